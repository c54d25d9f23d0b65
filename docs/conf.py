"""Sphinx configuration: MyST Markdown pages, the Furo theme, an API reference from the docstrings.

Built by ``make docs`` with warnings as errors (``-W``): a broken cross-reference, page link or
heading anchor fails the build, with no network needed.
"""

from clusterlight.version import __version__

project = "clusterlight"
author = "The clusterlight authors"
copyright = "2026, The clusterlight authors"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "package.md"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False  # Lightning's own hook docstrings use roles this site does not define
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"clusterlight {__version__}"
html_static_path = []
