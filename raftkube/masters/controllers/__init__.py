"""Leader-only controllers: pure plans from cached snapshots, applied with CAS writes."""
