"""What the admin's pages of rows it never adds or edits share."""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import HttpRequest


class ReadOnlyRows:
    """A ``ModelAdmin`` mixin (first among the bases): the rows are written elsewhere
    (the engine, the code, the workers); the admin shows them, styled as the app's."""

    class Media:
        css: ClassVar = {"all": ("salvador/admin.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
