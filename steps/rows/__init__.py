"""The data path's rows: the mapping file, the rules that convert a v1 row to a v2 document, and
the transform step that applies them to every exported table."""
