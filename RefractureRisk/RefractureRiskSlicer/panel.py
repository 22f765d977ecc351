"""Qt pieces of the panel built in code: the study chooser, the progress dialog of a long
step, the level review table and the clinical-input form. Qt is imported inside each function
(the module must import without it)."""

import contextlib

import slicer
from slicer.i18n import tr as _

from . import fatwater, tasks
from .mrml import LEVELS


def chooseItem(title, label, items):
    """The index of the item the user chose, or None on Cancel.

    A dialog instance, because the dialog's result is the only Cancel signal: PythonQt's static
    ``QInputDialog.getItem`` returns the current item's text on Cancel as well.
    """
    import qt

    dialog = qt.QInputDialog(slicer.util.mainWindow())
    dialog.setWindowTitle(title)
    dialog.setLabelText(label)
    dialog.setComboBoxItems(items)
    dialog.setOption(qt.QInputDialog.UseListViewForComboBoxItems)
    if dialog.exec_() != qt.QDialog.Accepted:
        return None
    text = dialog.textValue  # a Qt property: PythonQt reads it as an attribute
    return items.index(text) if text in items else None


@contextlib.contextmanager
def step(errorMessage):
    """Show an error with ``errorMessage`` (and re-raise); a cancelled long step is no error."""
    with slicer.util.tryWithErrorDisplay(errorMessage, waitCursor=True):
        try:
            yield
        except tasks.Cancelled:
            slicer.util.showStatusMessage(_("Cancelled."), 3000)


def processEvents():
    """Between pieces of GUI-thread work: repaint, but take no user input meanwhile."""
    import qt

    slicer.app.processEvents(qt.QEventLoop.ExcludeUserInputEvents)


def runLong(label, work, showAfterMs=0):
    """``work(progress)`` off the GUI thread behind a progress dialog whose Cancel stops it;
    the application processes its events every 50 ms meanwhile. Raises tasks.Cancelled.
    ``showAfterMs``: the dialog appears only if the work takes longer (a live point update)."""
    dialog = slicer.util.createProgressDialog(
        labelText=label, maximum=100, value=0, minimumDuration=showAfterMs
    )

    def poll(progress):
        dialog.labelText = f"{label}\n{progress.message}" if progress.message else label
        dialog.value = int(100 * progress.fraction)
        slicer.app.processEvents()
        return dialog.wasCanceled

    try:
        result = tasks.runInBackground(work, poll)
        dialog.value = 100  # done: polls every 50 ms may have last seen an earlier step
        return result
    finally:
        dialog.close()


def readMapsOrEchoes(read, separation):
    """The studies to show, in turn, from ``read(progress, echoes)`` behind progress dialogs
    (:func:`runLong`; raises tasks.Cancelled):

    - maps: the study read;
    - echo images, no maps (:class:`.fatwater.EchoSeriesError`): the maps computed from them
      with ``separation`` (:class:`.fatwater.Separation`), once the user agrees;
    - maps and echo images: the study read, then (the panel shows it meanwhile) the maps
      computed from the echoes, once the user agrees to use them instead.
    """
    try:
        loaded = runLong(_("Reading DICOM..."), lambda progress: read(progress, False))
    except fatwater.EchoSeriesError as found:
        question = _(
            "This DICOM study holds {what}, not PDFF/R2* maps.\n\nCompute PDFF, R2*, water, fat "
            "and the field map from the echoes (fat-water separation with {how}; this can take "
            "a minute)?"
        ).format(what=found.description, how=separation.describe())
        if not slicer.util.confirmYesNoDisplay(question, windowTitle=_("Echo images found")):
            return
    else:
        yield loaded
        if not loaded.echoes:
            return
        question = _(
            "The vendor's PDFF/R2* maps are loaded. This DICOM study also holds {what}.\n\n"
            "Compute the maps from the echoes instead (fat-water separation with {how}; this "
            "can take a minute)? The vendor's maps stay in the scene."
        ).format(what=loaded.echoes, how=separation.describe())
        if not slicer.util.confirmYesNoDisplay(question, windowTitle=_("Echo images found too")):
            return
    label = _("Computing the maps from the echoes...")
    yield runLong(label, lambda progress: read(progress, separation))


def databaseStudies(db):
    """[(text shown, StudyInstanceUID)] of every study in Slicer's DICOM database ``db``."""
    studies = []
    for patient in db.patients():
        for studyUid in db.studiesForPatient(patient):
            series = db.seriesForStudy(studyUid)
            description = db.fieldForStudy("StudyDescription", studyUid) or studyUid
            date = db.fieldForStudy("StudyDate", studyUid)
            studies.append((f"{date} {description} ({len(series)} series)", studyUid))
    return studies


def fillLevelReview(table, rows, onAccept, onReject, onRelabel):
    """One row per level to check (review.reviewRows): level, confidence, why, and the three
    one-click answers: Accept, Reject, and a "relabel as" list."""
    import qt

    table.clear()
    table.setColumnCount(4)
    table.setHorizontalHeaderLabels([_("Level"), _("Confidence"), _("Why"), _("Decision")])
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        level = row["level"]
        for c, text in enumerate((level, f"{row['confidence']:.2f}", "; ".join(row["reasons"]))):
            table.setItem(r, c, qt.QTableWidgetItem(text))
        cell = qt.QWidget()
        box = qt.QHBoxLayout(cell)
        box.setContentsMargins(0, 0, 0, 0)
        if row["decision"]:
            box.addWidget(qt.QLabel(row["decision"]))
        for text, handler in ((_("Accept"), onAccept), (_("Reject"), onReject)):
            button = qt.QPushButton(text)
            button.connect("clicked()", lambda h=handler, lv=level: h(lv))
            box.addWidget(button)
        relabel = qt.QComboBox()
        others = [lv for lv in LEVELS if lv != level]
        relabel.addItems([_("relabel as..."), *others])
        relabel.connect(
            "activated(int)",
            lambda i, lv=level, names=others: onRelabel(lv, names[i - 1]) if i > 0 else None,
        )
        box.addWidget(relabel)
        table.setCellWidget(r, 3, cell)


def buildClinicalForm(formWidget, specs, saved):
    """One editor per clinical input (unit and allowed range shown); returns {name: (spec,
    editor)}. ``saved``: values to show."""
    import qt

    layout = formWidget.layout()
    while layout.count():
        item = layout.takeAt(0)
        if item.widget():
            item.widget().deleteLater()
    editors = {}
    for spec in specs:
        if spec.kind in ("category", "binary"):
            editor = qt.QComboBox()
            if spec.kind == "category":
                editor.addItems(["", *spec.levels])
                editor.currentText = str(saved.get(spec.name, ""))
            else:
                editor.addItems(["", "no", "yes"])
                value = saved.get(spec.name)
                editor.currentIndex = 0 if value is None else (2 if value else 1)
        else:
            editor = qt.QLineEdit()
            lo, hi = spec.hard_range or (None, None)
            editor.placeholderText = "" if lo is None else _("{lo} to {hi}").format(lo=lo, hi=hi)
            if saved.get(spec.name) is not None:
                editor.text = str(saved[spec.name])
        editor.toolTip = spec.description
        layout.addRow(spec.name + (f" ({spec.unit})" if spec.unit else ""), editor)
        editors[spec.name] = (spec, editor)
    return editors


def clinicalValues(editors):
    """{name: value} from the form (None where empty); a non-number is an error naming it."""
    values = {}
    for name, (spec, editor) in editors.items():
        if spec.kind == "category":
            values[name] = editor.currentText or None
        elif spec.kind == "binary":
            values[name] = {0: None, 1: False, 2: True}[editor.currentIndex]
        else:
            text = editor.text.strip()
            try:
                values[name] = float(text) if text else None
            except ValueError:
                raise ValueError(f"{name}: {text!r} is not a number") from None
    return values
