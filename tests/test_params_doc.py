"""docs/parameters.md is generated from the parameter declarations and must be current."""

from pathlib import Path

from gpusim.params import ASSUMED, PARAMS
from gpusim.scenario import parameter_reference_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "parameters.md"


def test_parameter_reference_is_current():
    assert DOC.is_file(), "docs/parameters.md is missing: run `gpusim params --markdown > docs/parameters.md`"
    assert DOC.read_text(encoding="utf-8") == parameter_reference_markdown(), (
        "docs/parameters.md is stale: regenerate it with `gpusim params --markdown > docs/parameters.md`")


def test_every_parameter_has_a_doc_a_source_and_a_row():
    text = DOC.read_text(encoding="utf-8")
    for p in PARAMS:
        assert p.doc.strip() and p.source.strip(), p.key
        assert f"| `{p.key}` |" in text, p.key
        if p.source == ASSUMED:
            assert "*assumed*" in text


def test_model_doc_names_every_mechanism_section():
    model = (DOC.parent / "model.md").read_text(encoding="utf-8")
    for word in ("TGF-β", "IFN-γ", "IL-12", "PD-L1", "trogocytosis", "dnTGFbRII", "TGFb_trap",
                 "intratumoral", "regional", "IL-6", "CRS", "ICANS", "anti-PD-1", "lymphodepletion",
                 "CD28", "4-1BB"):
        assert word in model, f"docs/model.md does not describe {word}"
