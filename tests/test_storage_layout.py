"""Where things live in storage: ``emulator/storage/paths.py`` builds every path of distribution's layout
and reads every one back, and no other module of the package spells a piece of the layout or builds a
path out of its pieces (the guard at the end reads their syntax trees).

What the layout is, byte for byte, is tested in ``test_storage.py`` and against distribution itself in
``test_distribution_compat.py``.
"""

from __future__ import annotations

import ast
import pathlib
import re
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

import emulator
from emulator.reference import TAG_RE
from emulator.reference import UPLOAD_ID_RE
from emulator.reference import Digest
from emulator.reference import is_valid_name
from emulator.storage import paths

PACKAGE = pathlib.Path(emulator.__file__).resolve().parent
#: Modules that may write layout-shaped strings, and why.
EXEMPT = {
    # The one module that knows the layout.
    "storage/paths.py",
    # The driver contract exercises drivers on paths shaped like the ones storage writes (``_uploads/
    # <id>/data``, ``blobs/data``), under a scratch prefix of its own: test data for drivers, which
    # know nothing of the layout, not a second copy of it.
    "drivers/contract.py",
}
#: The one module that spells the distribution API's URLs (``/v2/<name>/blobs/<digest>``): a string
#: starting with ``/v2/`` there is an HTTP path, whose segments (``blobs``, ``tags``) share their names
#: with directories of the layout. Names only the layout has (``_manifests``) stay refused there too.
API_URLS = "ociclient.py"

# Names are put together from parts: generating them from NAME_RE itself takes seconds per test.
_alphanumerics = st.text("abz059", min_size=1, max_size=4)
_components = st.builds(
    lambda first, rest: first + "".join(separator + part for separator, part in rest),
    _alphanumerics,
    st.lists(st.tuples(st.sampled_from([".", "_", "__", "-", "--"]), _alphanumerics), max_size=2),
)
names = st.lists(_components, min_size=1, max_size=4).map("/".join)
tags = st.from_regex(TAG_RE, fullmatch=True)
upload_ids = st.uuids().map(str)
digests = st.builds(Digest.of, st.binary(max_size=64), st.sampled_from(["sha256", "sha512"]))


# -- reading paths back ----------------------------------------------------------------------------


@given(names, upload_ids, tags, digests)
def test_an_upload_directory_is_told_from_every_other_path(
    name: str, upload_id: str, tag: str, digest: Digest
) -> None:
    assert is_valid_name(name)
    assert UPLOAD_ID_RE.fullmatch(upload_id)
    upload = paths.upload(name, upload_id)
    assert paths.is_upload(upload)
    assert paths.upload_id_of(upload) == upload_id
    assert paths.upload_started_at_in(upload) == paths.upload_started_at(name, upload_id)
    others = [
        paths.repository(name),
        paths.uploads(name),
        paths.upload_data(name, upload_id),
        paths.upload_started_at(name, upload_id),
        paths.tag(name, tag),
        paths.manifest_revision(name, digest),
        paths.layer_link(name, digest),
        paths.blob_dir(digest),
    ]
    assert [path for path in others if paths.is_upload(path)] == []


@given(names, tags, digests)
def test_listed_tags_and_revisions_read_back_as_what_built_them(name: str, tag: str, digest: Digest) -> None:
    assert paths.tag_of(paths.tag(name, tag)) == tag
    revision = paths.manifest_revision(name, digest)
    assert paths.revision_digest_of(revision) == digest
    assert paths.revision_link(revision) == paths.manifest_revision_link(name, digest)


@given(names, digests)
def test_a_repository_reads_back_as_its_name_and_no_part_of_a_name_is_its_own_directory(
    name: str, digest: Digest
) -> None:
    repository = paths.repository(name)
    assert paths.repository_name_of(repository) == name
    segments = name.split("/")
    parts = [paths.repository("/".join(segments[:n])) for n in range(1, len(segments) + 1)]
    assert [part for part in parts if paths.is_repository_own(part)] == []
    own = [f"{repository}/{segment}" for segment in (paths.LAYERS, paths.MANIFESTS, paths.UPLOADS)]
    assert [path for path in own if not paths.is_repository_own(path)] == []
    assert [path for path in own if paths.is_layers(path)] == [own[0]]
    assert paths.layer_link(name, digest).startswith(own[0] + "/")


# -- the guard -------------------------------------------------------------------------------------

#: Names that no other string of the package has reason to hold, as words of their own (``list_multipart_
#: uploads`` is S3's, not the layout's).
LAYOUT_NAMES = re.compile(
    r"docker/registry/v2|(?<!\w)(?:_layers|_manifests|_uploads|startedat|hashstates)(?!\w)"
)
#: Everyday words that are directories of the layout when they stand as a segment of a path.
LAYOUT_SEGMENTS = frozenset(
    {"blobs", "repositories", "revisions", "tags", "index", "current", "link", "data"}
)
#: What ``paths`` defines that is a path segment rather than a path: only ``paths`` combines them.
SEGMENT_CONSTANTS = frozenset(
    name
    for name, value in vars(paths).items()
    if name.isupper() and isinstance(value, str) and not value.startswith("/")
)
#: String methods that take a path apart when given ``"/"``.
SPLITTERS = frozenset({"split", "rsplit", "partition", "rpartition"})
#: Stands for what an f-string or a concatenation fills in at run time.
HOLE = "\0"


def names_layout(text: str, *, api_urls: bool = False) -> bool:
    if LAYOUT_NAMES.search(text):
        return True
    if api_urls and text.startswith("/v2/"):
        return False
    return "/" in text and any(segment in LAYOUT_SEGMENTS for segment in text.split("/"))


class LayoutGuard(ast.NodeVisitor):
    """Finds, in one module, every string that spells a piece of the layout and every path built or
    taken apart with what ``paths`` defines.

    In ``emulator/storage/`` no path is built or taken apart at all: storage talks to its driver in
    paths from ``paths`` only. Docstrings are prose, and the first argument of Werkzeug's ``Rule`` is
    an HTTP route (``/v2/<name>/blobs/uploads/``), not a storage path; so are strings starting with
    ``/v2/`` in the module of :data:`API_URLS` (``api_urls``).
    """

    def __init__(self, tree: ast.Module, *, storage: bool, api_urls: bool = False) -> None:
        self.storage = storage
        self.api_urls = api_urls
        self.offences: list[str] = []
        #: Names bound to the ``paths`` module or to something it defines.
        self.from_paths: set[str] = set()
        self.skipped: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                first = node.body[0] if node.body else None
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                    self.skipped.add(id(first.value))
            elif isinstance(node, ast.Call) and _called(node) == "Rule" and node.args:
                self.skipped.update(id(below) for below in ast.walk(node.args[0]))

    def offence(self, node: ast.AST, what: str) -> None:
        self.offences.append(f"{getattr(node, 'lineno', '?')}: {what}: {ast.unparse(node)[:120]}")

    def mentions_paths(self, node: ast.AST) -> bool:
        return any(isinstance(below, ast.Name) and below.id in self.from_paths for below in ast.walk(node))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for alias in node.names:
            if module.rpartition(".")[2] == "paths" or (
                alias.name == "paths" and (node.level > 0 or module.endswith("storage"))
            ):
                self.from_paths.add(alias.asname or alias.name)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.endswith("storage.paths"):
                self.from_paths.add(alias.asname or alias.name.partition(".")[0])

    def visit_Constant(self, node: ast.Constant) -> None:
        if (
            id(node) not in self.skipped
            and isinstance(node.value, str)
            and names_layout(node.value, api_urls=self.api_urls)
        ):
            self.offence(node, "spells the storage layout")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in SEGMENT_CONSTANTS and self.mentions_paths(node.value):
            self.offence(node, "takes a segment of the layout out of paths")
        self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        if id(node) in self.skipped:
            return
        filled = [part.value for part in node.values if isinstance(part, ast.FormattedValue)]
        text = "".join(_literal(part) for part in node.values)
        self.check_built(node, text, filled)
        for value in filled:
            self.visit(value)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        operands = _concatenated(node)
        if not any(isinstance(o, ast.Constant) and isinstance(o.value, str) for o in operands):
            self.generic_visit(node)
            return
        text = "".join(_literal(operand) for operand in operands)
        filled = [o for o in operands if not isinstance(o, ast.Constant)]
        self.check_built(node, text, filled)
        for operand in filled:
            self.visit(operand)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr == "join" and _is_slash(node.func.value):
                self.check_joined(node, node.args[0])
            elif node.func.attr in SPLITTERS and _is_slash(node.args[0]):
                self.check_split(node, node.func.value)
        self.generic_visit(node)

    def check_joined(self, node: ast.Call, pieces: ast.expr) -> None:
        if isinstance(pieces, ast.List | ast.Tuple):
            text = "/".join(_literal(piece) for piece in pieces.elts)
            self.check_built(node, text, [p for p in pieces.elts if not isinstance(p, ast.Constant)])
        elif self.storage or self.mentions_paths(pieces):
            self.offence(node, "builds a storage path")

    def check_split(self, node: ast.Call, path: ast.expr) -> None:
        if self.storage or self.mentions_paths(path):
            self.offence(node, "takes a storage path apart")

    def check_built(self, node: ast.AST, text: str, filled: list[ast.expr]) -> None:
        if names_layout(text, api_urls=self.api_urls):
            self.offence(node, "spells the storage layout")
        elif "/" in text.replace(HOLE, "") and (self.storage or any(self.mentions_paths(f) for f in filled)):
            self.offence(node, "builds a storage path")


def _called(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


def _concatenated(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _concatenated(node.left) + _concatenated(node.right)
    return [node]


def _is_slash(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value == "/"


def _literal(node: ast.expr) -> str:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else HOLE


def layout_offences(source: str, *, storage: bool = False, api_urls: bool = False) -> list[str]:
    tree = ast.parse(source)
    guard = LayoutGuard(tree, storage=storage, api_urls=api_urls)
    guard.visit(tree)
    return guard.offences


def test_only_paths_knows_the_layout() -> None:
    offences = []
    for module in sorted(PACKAGE.rglob("*.py")):
        relative = module.relative_to(PACKAGE).as_posix()
        if relative in EXEMPT:
            continue
        storage = relative.startswith("storage/")
        found = layout_offences(module.read_text(), storage=storage, api_urls=relative == API_URLS)
        offences += [f"{relative}:{o}" for o in found]
    assert offences == []


def test_every_exempt_module_exists() -> None:
    assert sorted(m for m in [*EXEMPT, API_URLS] if not (PACKAGE / m).is_file()) == []


@pytest.mark.parametrize(
    "source",
    [
        'def blob_path(repository, digest):\n    return f"/v2/{repository}/blobs/{digest}"',
        'TAGS = "/v2/library/app/tags/list"',
        'target = "/v2/" + name + "/blobs/uploads/"',
    ],
)
def test_api_urls_are_spelt_in_the_client_module_only(source: str) -> None:
    assert layout_offences(source, api_urls=True) == []
    assert layout_offences(source) != []


@pytest.mark.parametrize(
    "source",
    [
        'link = f"/v2/{name}/_manifests/tags/{tag}/current/link"',
        'data = f"{root}/blobs/{algorithm}/{prefix}/{hex}/data"',
        'ROOT = "/docker/registry/v2"',
        'from .storage import paths\nblob = f"/v2/{paths.BLOBS}/{digest}"',
    ],
)
def test_the_client_module_may_not_spell_storage_paths(source: str) -> None:
    assert layout_offences(source, api_urls=True) != []


@pytest.mark.parametrize(
    "source",
    [
        'UPLOADS = f"{root}/_uploads/{upload_id}"',
        'data = f"{upload}/data"',
        'link = directory + "/link"',
        'link = directory + "/" + "current" + "/" + "link"',
        'blob = "/".join([root, "blobs", algorithm])',
        'ROOT = "/docker/registry/v2"',
        'MARK = "startedat"',
        'log.info("upload %s has no _uploads/<id>/startedat", path)',
        'template = "{}/tags/{}".format(name, tag)',
        'from . import paths\nrepository = f"{paths.REPOSITORIES}/{name}"',
        'from . import paths\nrepository = paths.REPOSITORIES + "/" + name',
        'from .storage import paths\nblob = "/".join((paths.BLOBS, algorithm))',
        'from . import paths\ndirectory = paths.tag_current_link(name, tag).rsplit("/", 1)[0]',
        "from . import paths\nuploads = leaf == paths.UPLOADS",
        "from emulator.storage.paths import REPOSITORIES\nname = f'{REPOSITORIES}/{name}'",
        "import emulator.storage.paths as layout\nname = f'{layout.REPOSITORIES}/{name}'",
    ],
)
def test_the_guard_finds_layout_spelt_or_built_anywhere(source: str) -> None:
    assert layout_offences(source) != []


@pytest.mark.parametrize(
    "source",
    [
        'name, _, leaf = path.rpartition("/")',
        'child = f"{name}/{leaf}"',
        'child = "/".join(parts)',
        'directory = prefix + "/" + leaf',
    ],
)
def test_the_guard_finds_any_path_built_or_taken_apart_in_storage(source: str) -> None:
    assert layout_offences(source) == []
    assert layout_offences(source, storage=True) != []


@pytest.mark.parametrize(
    "source",
    [
        '"""Data lands in ``_uploads/<id>/data``, then moves to ``blobs/``."""',
        'def f():\n    """Tags live in ``_manifests/tags/<tag>/current/link``."""',
        'Rule(f"{root}/<name:name>/blobs/uploads/<segment:upload_id>", endpoint="upload")',
        'routing.Rule(f"{root}/<name:name>/tags/list", endpoint="tags")',
        'key = f"repository::{name}::blobs::{digest}"',
        "uploads = client.list_multipart_uploads(Bucket=bucket)",
        'body = {"repositories": page, "tags": tags, "data": data}',
        'MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"',
        'parent = path.rsplit("/", 1)[0]',
        'children = [f"{prefix}/{name}" for name in names]',
        "from . import paths\nsize = driver.stat(paths.blob_data(digest)).size",
        'from . import paths\nlog.info("purged %s", paths.upload(name, upload_id))',
    ],
)
def test_the_guard_passes_what_is_not_the_layout(source: str) -> None:
    assert layout_offences(textwrap.dedent(source)) == []
