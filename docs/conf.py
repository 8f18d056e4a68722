"""Sphinx configuration: the API reference from lossk's docstrings, and the design and performance notes."""
import lossk

project = "lossk"
author = "the lossk authors"
release = version = lossk.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
napoleon_numpy_docstring = True
napoleon_google_docstring = False

myst_heading_anchors = 3
html_theme = "alabaster"
