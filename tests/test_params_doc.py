"""docs/parameters.md is generated from the parameter declarations and must be current."""

import re
from pathlib import Path

from gpusim.params import ASSUMED, PARAMS
from gpusim.scenario import parameter_reference_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "parameters.md"
FILE_SUFFIXES = {"h5", "toml", "json", "csv", "py", "md", "png", "svg", "html", "lock"}  # run.h5 is a file


def test_parameter_reference_is_current():
    assert DOC.is_file(), "docs/parameters.md is missing: run `gpusim params --markdown > docs/parameters.md`"
    assert DOC.read_text(encoding="utf-8") == parameter_reference_markdown(), (
        "docs/parameters.md is stale: regenerate it with `gpusim params --markdown > docs/parameters.md`")


def test_every_parameter_has_a_doc_a_source_and_a_row():
    """Each parameter's own row carries its description and its source (*assumed* where the
    value is ours), checked row by row."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `([^`]+)` \|(.*)\|\s*$", line)
        if m:  # cells split at unescaped pipes
            rows[m.group(1)] = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", m.group(2))]
    assert set(rows) == {p.key for p in PARAMS}
    for p in PARAMS:
        assert p.doc.strip() and p.source.strip(), p.key
        cells = rows[p.key]
        assert cells[3] == p.doc.strip(), p.key
        assert cells[-1] == ("*assumed*" if p.source == ASSUMED else p.source.strip()), p.key


def test_every_parameter_declares_its_unit():
    """A unit is declared, not guessed from the key: "1" for a dimensionless number, "" only for
    text, switches, integers that count things, and seeds."""
    for p in PARAMS:
        assert p.unit is not None, f"{p.key} declares no unit"
        if p.type is float:
            assert p.unit != "", f"{p.key}: a number needs a unit ('1' if dimensionless)"


def test_docs_name_only_parameters_that_exist():
    """Every `section.key` the docs name is a declared parameter (no stale names)."""
    keys = {p.key for p in PARAMS}
    sections = {k.split(".")[0] for k in keys}
    for doc in sorted(DOC.parent.glob("*.md")):
        if doc == DOC:
            continue
        for tok in re.findall(r"`([a-z][a-z0-9]*\.[a-z][a-z0-9_]*)(?:=[^`]*)?`", doc.read_text(encoding="utf-8")):
            if tok.split(".")[0] in sections and tok.rsplit(".", 1)[1] not in FILE_SUFFIXES:
                assert tok in keys, f"{doc.name} names {tok}, which is not a parameter"


def test_model_doc_names_every_mechanism_section():
    model = (DOC.parent / "model.md").read_text(encoding="utf-8")
    for word in ("TGF-β", "IFN-γ", "IL-12", "PD-L1", "trogocytosis", "dnTGFbRII", "TGFb_trap",
                 "intratumoral", "regional", "IL-6", "CRS", "ICANS", "anti-PD-1", "lymphodepletion",
                 "CD28", "4-1BB"):
        assert word in model, f"docs/model.md does not describe {word}"
