"""Request and response schemas, one module per resource (Base / Create / Public)."""
