"""The results package: the papers' numbers and cvbench's records in, tables and figures out.

Read it in the order the data flows:

* :mod:`~cvbench.report.papers` — the five papers: file, short name, method, plot style;
* :mod:`~cvbench.report.validate` — the field error, nested field names and the one number
  rule both loaders use;
* :mod:`~cvbench.report.reported` — ``results/reported.yaml``, loaded and checked;
* :mod:`~cvbench.report.records` — the record files, loaded and checked, typed run records;
* :mod:`~cvbench.report.classify` — which run records are protocol, custom, partial, invalid;
* :mod:`~cvbench.report.inputs` — everything a table reads, loaded once (:class:`Inputs`);
* :mod:`~cvbench.report.format` — the table object, footnotes and the number formatting;
* :mod:`~cvbench.report.tables` — one module per output table;
* :mod:`~cvbench.report.figures` — the figures;
* :mod:`~cvbench.report.writers` — Markdown, CSV and LaTeX writers;
* :mod:`~cvbench.report.render` — every table and figure written, and the byte-for-byte check.

This file imports nothing, so importing one part does not import the rest.
"""
