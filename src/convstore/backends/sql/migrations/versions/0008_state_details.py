"""The details of a conversation's state (seed 002: the request id while awaiting the
model, the tool while one runs, the message and chunk position while a reply streams,
the error), kept beside the state as a JSON object; ``{}`` for the states without any.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "conversations",
        sa.Column("state_details", sa.JSON(), nullable=False, server_default="{}"),
    )


def downgrade() -> None:
    op.drop_column("conversations", "state_details")
