"""Verification evaluation: which pairs (`protocols`), embedding and scoring them (`verify`), the logged report and
its figures (`report`, `figures`), `task=eval` on a checkpoint (`checkpoint`), and any model's score files
(`scores`, the `facenet score` command)."""
