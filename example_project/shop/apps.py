from django.apps import AppConfig


class ShopConfig(AppConfig):
    """A toy shop whose orders are processed by the ``process-order`` workflow."""

    name = "shop"
    default_auto_field = "django.db.models.BigAutoField"
