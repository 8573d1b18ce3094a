"""BatchLab's launcher side: what picks the window or the command line, and what measures both.

The engine (``engine``) never imports the window (``gui``); the code here may import both.
"""
