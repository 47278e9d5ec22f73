"""The fault-injection run (``benchmarks/chaos.py``): its workflow, faults and checks."""
