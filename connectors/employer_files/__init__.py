"""The managing units of government retirees: certification batches (CSV or XLSX) dropped
in a folder per unit, checked row by row, a result file per batch (channel EMPLOYER_BATCH).
See docs/partners/employer-files.md."""
