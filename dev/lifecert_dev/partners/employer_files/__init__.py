"""A managing unit of government retirees, as the process that drops certification batches
(CSV or XLSX) into its folder of the bureau's share, and the test kit's harness over it."""
