"""Files mnprof reads and writes, by concern: :mod:`~mnprof.files.write` (atomic writes and the checks that a
path can be written), :mod:`~mnprof.files.documents` (stable JSON, checked reads, strings made printable) and
:mod:`~mnprof.files.schemas` (the published JSON Schemas and validation against them, in one line).

The versioned table document is a rendering's format: :mod:`mnprof.views.table_document`.
"""
