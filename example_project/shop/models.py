"""The shop's orders."""

from django.db import models


class Order(models.Model):
    """An order, processed by the ``process-order`` workflow (see ``workflows.py``)."""

    class Status(models.TextChoices):
        NEW = "new", "New"
        VALIDATED = "validated", "Validated"
        PAID = "paid", "Paid"
        SHIPPED = "shipped", "Shipped"

    item = models.CharField(max_length=200)
    quantity = models.IntegerField()
    address = models.CharField(max_length=500, help_text="Street, city, country.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    payment_reference = models.CharField(max_length=100, blank=True)
    shipment_reference = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"Order {self.pk}: {self.quantity} x {self.item}"

    @property
    def country(self) -> str:
        """The last part of the address."""
        return self.address.rsplit(",", 1)[-1].strip()
