"""Backups that restore: ``tickcast backup --to DIR`` and ``tickcast restore --from DIR``."""
