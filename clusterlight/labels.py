"""Label names the package gives a meaning to; a leaf module (it imports nothing from clusterlight)."""

from __future__ import annotations

BACKGROUND = "background"  # the class of clips and stretches of audio without an event
