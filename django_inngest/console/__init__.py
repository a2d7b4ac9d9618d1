"""What the admin and ``/metrics`` compute and draw: read-only views of the tables (the run
timeline, step outcomes, long runs folded, payload search, the dashboard's aggregates and SVG
charts, Prometheus metrics, the one time format)."""
