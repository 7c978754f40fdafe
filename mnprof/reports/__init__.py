"""``mnprof report``: regenerate everything in ``reports/`` from one command.

Count-only files are deterministic (the same code and versions give the same bytes, and a test
holds the committed ones to that); timing files say which host measured them and when.

Modules: :mod:`~mnprof.reports.catalogue` (the files a report holds, what each is and the command that
regenerates it), :mod:`~mnprof.reports.counts` (the count-only files, rendered then written all or none),
:mod:`~mnprof.reports.timing` (the host-specific files: results, timed layers, measured memory, roofline),
:mod:`~mnprof.reports.figures` (the figures page and its picture) and :mod:`~mnprof.reports.index`
(``reports/README.md`` and where its timing parts come from).
"""
