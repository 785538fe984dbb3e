"""Errors of backups and restores.

::

    TickcastError
     └── BackupError      a backup is missing, incomplete or corrupt, or a restore target
                          is not empty; nothing was changed when it is raised before a restore
"""

from __future__ import annotations

from tickcast.errors import TickcastError


class BackupError(TickcastError):
    """A backup cannot be made or restored as asked; the message says what and where."""
