"""The campaign report (``lifecert report``): the 10 July summary and the end-of-year one,
as HTML (charts in inline SVG) and PDF.

figures (pure: rows -> figures) -> document (figures -> blocks) -> html / pdf (rendering);
sources reads the rows from a replay output or hands over those of the read models.
"""
