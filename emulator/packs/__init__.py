"""Packs: reading a pack (directory or ``.tar.gz``), checking it, and the pack registry's rules on push.

- :mod:`.archive` reads a pack without extracting it; :mod:`.validate` checks it (``schema.json`` for
  ``pack.json``);
- :mod:`.versions` parses version tags and names their parent tags; :mod:`.parenttags` keeps those
  pointing at the highest release;
- :mod:`.hooks` is what the manifest handler calls when ``validation.packs`` is switched on.

What the documents do not state is marked as inference where it is decided.
"""

from __future__ import annotations

from .archive import Limits as Limits
from .problems import PackProblem as PackProblem
from .validate import Pack as Pack
from .validate import check as check
from .validate import read_pack as read_pack
from .validate import schema as schema
from .versions import TagVersion as TagVersion
from .versions import is_parent_tag as is_parent_tag
from .versions import parent_tags as parent_tags
from .versions import parse_tag as parse_tag
