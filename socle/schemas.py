"""What every service's API schemas share."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class ReadModel(BaseModel):
    """An output schema read from an object's attributes (a database row, a domain dataclass).

    Fields are matched by name, renamed ones through ``validation_alias``: no field-by-field copy to keep in
    step with the model.
    """

    # populate_by_name: FastAPI validates the returned model again from its dump, which uses the field names.
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    @classmethod
    def of(cls, source: Any) -> Self:
        return cls.model_validate(source)
