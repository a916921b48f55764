"""The streams process (`faust -A streams.app worker`): real-time rolling metrics."""
