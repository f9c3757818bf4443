"""The Textual front end: the app, its screens, widgets and command palette.

Screens render what `workbench.ops` reads and dispatch actions to `workbench.ops` in
workers; workers post messages and never touch widgets.
"""
