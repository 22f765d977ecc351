"""Write the five example reports of docs/examples/ (synthetic data only; deterministic).

normal: no fracture or cement in the images (the treated level L4 is left out of the summaries);
fractured-index: a fractured, treated L1; cement: a cemented L1; missing-range: one clinical input
missing, shown as a range; trained-interval: a small model trained on a synthetic cohort, whose
risk has a 95% interval. Each gets report.png and report.html (the PDF, an image of the same page,
is left out to keep the folder small; ``--pdf`` writes it too, for checking it with pdftoppm).
Run: .venv/bin/python scripts/make_example_reports.py [OUT] [--pdf]
"""

from __future__ import annotations

import base64
import io
import shutil
import sys
import tempfile
from pathlib import Path

from RefractureRiskLib.commands.demo import DEMO_CLINICAL
from RefractureRiskLib.model.dev.schema import read_cohort
from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort
from RefractureRiskLib.model.dev.training import FitSpec, train_model
from RefractureRiskLib.model.modelfile import load_model
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
from RefractureRiskLib.pipeline import AnalysisOptions, analyze_study


def trained_model(folder: Path) -> Path:
    cohort = read_cohort(generate_cohort(560, 3, 0.0, seed=101).data)
    result = train_model(
        cohort, spec=FitSpec("l2"), n_imputations=1, n_bootstrap=30, loco=False, cox=False,
        log=lambda _msg: None, name="synthetic example model (560 synthetic patients)",
    )  # fmt: skip
    return result.model.save(folder / "model.json")


def _palette_png(png: bytes) -> bytes:
    """The page with a 256-colour palette: about a third of the size, the same to the eye."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        buf = io.BytesIO()
        image.convert("RGB").quantize(256).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def main(out: Path, pdf: bool = False) -> None:
    work = Path(tempfile.mkdtemp(prefix="refracture-examples-"))
    clinical = dict(DEMO_CLINICAL)
    del clinical["tl_junction"]  # derived from the index level
    examples = {
        "normal": (PhantomSpec(seed=3, snr=80.0), ("L4",), clinical, "refuse", None),
        "fractured-index": (
            PhantomSpec(seed=1, fractured={"L1": 0.3}, snr=80.0),
            ("L1",),
            clinical,
            "refuse",
            None,
        ),
        "cement": (
            PhantomSpec(seed=2, cemented=("L1",), snr=80.0),
            ("L1",),
            clinical,
            "refuse",
            None,
        ),
        "missing-range": (
            PhantomSpec(seed=1, fractured={"L1": 0.3}, snr=80.0),
            ("L1",),
            {k: v for k, v in clinical.items() if k != "dxa_l1l4_tscore"},
            "range",
            None,
        ),
        "trained-interval": (
            PhantomSpec(seed=1, fractured={"L1": 0.3}, snr=80.0),
            ("L1",),
            None,
            "refuse",
            "trained",
        ),
    }
    model_path = None
    for name, (spec, index, patient, missing, model) in examples.items():
        if model == "trained":
            model_path = model_path or trained_model(work)
            inputs = {s.name for s in load_model(model_path).inputs}
            patient = {k: v for k, v in DEMO_CLINICAL.items() if k in inputs}
        study = generate_phantom(spec).study
        options = AnalysisOptions(
            index_levels=index,
            reader="example",
            missing=missing,
            model_path=model_path if model == "trained" else None,
        )
        result = analyze_study(
            study, patient, work / name, options, patient_label=f"example: {name}"
        )
        target = out / name
        target.mkdir(parents=True, exist_ok=True)
        small = _palette_png(result.files["report_png"].read_bytes())
        (target / "report.png").write_bytes(small)
        page = result.files["report_html"].read_text()
        old = base64.b64encode(result.files["report_png"].read_bytes()).decode()
        (target / "report.html").write_text(page.replace(old, base64.b64encode(small).decode()))
        if pdf:
            shutil.copyfile(result.files["report_pdf"], target / "report.pdf")
        print(f"{name}: {result.risk.risk_text() if result.risk else 'no risk'}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--pdf"]
    main(
        Path(args[0]) if args else Path(__file__).parents[1] / "docs" / "examples",
        pdf="--pdf" in sys.argv[1:],
    )
