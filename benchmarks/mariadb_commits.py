"""MariaDB's count of committed transactions, for the commits per step of a burst.

PostgreSQL counts every transaction a database commits (``pg_stat_database.xact_commit``),
statements run in autocommit and read-only transactions included. MariaDB's nearest
count is the sum of three InnoDB monitor counters: ``trx_rw_commits`` (read-write
transactions), ``trx_ro_commits`` (read-only ones) and ``trx_nl_ro_commits`` (reads in
autocommit). They are off by default: :class:`CommitCounter` turns on those that are
off (``SET GLOBAL innodb_monitor_enable``, which needs the privilege) and back off when
it closes. Like every MariaDB status they are the server's, not one database's: other
clients add to them, so each reading notes how many other sessions were connected.

Not used, and why (both checked by experiment): ``Com_commit`` counts COMMIT
statements, so none of the statements run in autocommit (the Redis queue's claim is
one); ``Handler_commit`` grows by one for each statement that touches an InnoDB table,
in a transaction or not, and by one more for each transaction's COMMIT: it counts
statements, not transactions.
"""

from __future__ import annotations

from benchmarks.servers import MySQLConnection

COUNTERS = ("trx_rw_commits", "trx_ro_commits", "trx_nl_ro_commits")
_MARKS = ", ".join(["%s"] * len(COUNTERS))


class CommitCounter:
    """InnoDB's committed transactions, read through a connection of its own."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.conn = MySQLConnection()  # no database: its reads commit no InnoDB transaction
        self.turned_on: list[str] = []
        #: The most sessions of other clients (not of ``database``) seen at a reading.
        self.other_sessions = 0

    def start(self) -> None:
        """Turn on the counters that are off."""
        rows = self.conn.execute(
            f"SELECT NAME, ENABLED FROM information_schema.INNODB_METRICS WHERE NAME IN ({_MARKS})",
            COUNTERS,
        ).fetchall()
        for name, enabled in rows:
            if not enabled:
                self.conn.execute("SET GLOBAL innodb_monitor_enable = %s", (name,))
                self.turned_on.append(name)

    def commits(self) -> int:
        """The transactions InnoDB has committed since the counters were turned on."""
        others = self.conn.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
            "AND COMMAND <> 'Daemon' AND USER <> 'system user' AND (DB IS NULL OR DB <> %s)",
            (self.database,),
        ).fetchone()[0]
        self.other_sessions = max(self.other_sessions, int(others))
        total = self.conn.execute(
            f"SELECT SUM(COUNT) FROM information_schema.INNODB_METRICS WHERE NAME IN ({_MARKS})",
            COUNTERS,
        ).fetchone()[0]
        return int(total)

    def close(self) -> None:
        """Turn off the counters :meth:`start` turned on; close the connection."""
        try:
            for name in self.turned_on:
                self.conn.execute("SET GLOBAL innodb_monitor_disable = %s", (name,))
        finally:
            self.conn.close()
