"""tickcast: schemas — the Avro contracts (``schemas/avro/*.avsc``, namespace ``io.tickcast.v1``).

Load and encode them with :mod:`streams.codec`; check evolution with :mod:`schemas.compat`.
"""

from pathlib import Path

AVRO_DIR = Path(__file__).resolve().parent / "avro"
NAMESPACE = "io.tickcast.v1"

__all__ = ["AVRO_DIR", "NAMESPACE"]
