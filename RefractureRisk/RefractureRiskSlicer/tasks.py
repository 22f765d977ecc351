"""Long steps off the GUI thread, with progress and cancel.

A long step (reading DICOM, detecting vertebrae, computing) runs in a worker thread on library
types only (never MRML or Qt, which belong to the GUI thread); the GUI thread waits in a loop
that lets the worker run, and every ``intervalS`` (50 ms) calls ``poll``, which shows the
progress, processes the application's events and says whether the user pressed Cancel.

Progress: the work receives a :class:`Progress` and calls it between its steps; the library's
own ``progress(message)`` callbacks report to it through :func:`libraryProgress`. Cancel: once
requested, the worker raises :class:`Cancelled` at its next Python bytecode outside an import
(:func:`raiseInThread`), also deep inside a library call that reports no progress (CPython's
``PyThreadState_SetAsyncExc``, which costs the work nothing: a trace function checking a flag
at every call cost a live point update about 10 % of its CPU time). The GUI side does not
wait for the worker: :func:`runInBackground` raises :class:`Cancelled` at once, and the
worker, which holds no MRML node, stops on its own; a cancelled step never reaches the scene.
"""

import ctypes
import re
import sys
import threading
import time

#: How often the GUI thread processes events while a long step runs (seconds).
POLL_INTERVAL_S = 0.05
#: Code a cancel never interrupts (see raiseInThread): the import system anywhere on the
#: stack, the lock handling of these modules as the innermost frame.
IMPORT_CODE = ("<frozen importlib", "/importlib/")
LOCK_CODE = ("/threading.py", "/logging/", "/queue.py", "/concurrent/futures/")


class Cancelled(BaseException):
    """The user cancelled a long step; nothing of it reached the scene.

    A BaseException (like KeyboardInterrupt), so a library's ``except Exception`` cannot
    swallow it on its way out of the worker."""

    def __init__(self, message="cancelled by the user"):
        super().__init__(message)


class Progress:
    """What a long step reports: ``message`` and ``fraction`` (0-1), read by the GUI thread.

    Call it as ``progress("reading DICOM", 0.2)`` (the message alone is the library's
    ``Progress`` signature); it raises :class:`Cancelled` once :meth:`cancel` was called.
    """

    def __init__(self):
        self.message = ""
        self.fraction = 0.0
        self.calls = 0
        self._cancel = threading.Event()

    def __call__(self, message=None, fraction=None):
        if self._cancel.is_set():
            raise Cancelled()
        self.calls += 1
        if message is not None:
            self.message = str(message)
        if fraction is not None:
            self.fraction = min(max(float(fraction), 0.0), 1.0)

    def cancel(self):
        self._cancel.set()

    @property
    def cancelled(self):
        return self._cancel.is_set()


def libraryProgress(progress, start, end, steps=None):
    """A library ``progress(message)`` callback that reports to ``progress`` (a
    :class:`Progress`, or None) with a fraction between ``start`` and ``end``, read from the
    message's "12%" or "3 of 40": the library's messages carry their counts, not a fraction.
    ``steps``: for a library call that says only which of its ``steps`` steps starts (e.g.
    automatic_rois), the k-th message without a count starts the k-th equal share. A message
    without a count otherwise keeps the fraction; it never goes back."""
    reached, started = [start], [0]

    def say(message):
        done = _fractionIn(str(message))
        if done is None and steps:
            done, started[0] = started[0] / steps, started[0] + 1
        if done is not None:
            reached[0] = max(reached[0], start + (end - start) * min(done, 1.0))
        if progress is not None:
            progress(message, reached[0])

    return say


def _fractionIn(message):
    """0-1 from "... 42%" or "... 3 of 40 ..." in a progress message, else None."""
    match = re.search(r"(\d+(?:\.\d+)?)\s*%", message)
    if match:
        return min(float(match.group(1)) / 100.0, 1.0)
    match = re.search(r"\b(\d+) of (\d+)\b", message)
    if match and int(match.group(2)) > 0:
        return min(int(match.group(1)) / int(match.group(2)), 1.0)
    return None


def runInBackground(work, poll, intervalS=POLL_INTERVAL_S, worker=None):
    """``work(progress)`` in a worker thread; ``poll(progress)`` on this thread every
    ``intervalS`` until it finishes. ``poll`` returns True to cancel: :class:`Cancelled` is
    raised here at once. The work's exception, if any, is raised here. ``worker``: a list that
    receives the thread (tests check that a cancelled worker stops)."""
    progress = Progress()
    outcome = {}

    def target():
        try:
            try:
                outcome["result"] = work(progress)
            except BaseException as err:  # handed to the GUI thread
                outcome["error"] = err
        except Cancelled:
            pass  # the cancel arrived as the work ended: nobody waits for its result

    thread = threading.Thread(target=target, name="RefractureRisk step", daemon=True)
    if worker is not None:
        worker.append(thread)
    thread.start()
    while thread.is_alive():
        thread.join(intervalS)  # releases the GIL: the worker runs while we wait
        if thread.is_alive() and poll(progress):
            progress.cancel()
            raiseInThread(thread, Cancelled)
            raise Cancelled()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def raiseInThread(thread, exceptionType, waitS=0.01):
    """Raise ``exceptionType`` in ``thread`` at its next Python bytecode (a C call running
    there finishes first), once the thread is outside the import system and the standard
    library's lock handling (:func:`_safeToInterrupt`): a watcher thread waits for that,
    looking every ``waitS`` seconds. Nothing happens when the thread has ended.

    An exception raised inside an import can leave the interpreter's import lock held for ever
    (the next import anywhere, the GUI's too, then waits for ever): this happened when Cancel
    was pressed while a step imported the library on first use."""

    def deliver():
        while thread.is_alive():
            if _safeToInterrupt(sys._current_frames().get(thread.ident)):
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(thread.ident), ctypes.py_object(exceptionType)
                )
                return
            time.sleep(waitS)

    if thread.ident is not None and thread.is_alive():
        threading.Thread(target=deliver, name="RefractureRisk cancel", daemon=True).start()


def _safeToInterrupt(frame):
    """False while ``frame`` (a thread's innermost frame) or a caller is in the import system,
    or while the innermost frame handles locks in threading, logging, queue or
    concurrent.futures (an exception between taking a lock and the ``try`` that releases it
    would keep it taken)."""
    innermost = True
    while frame is not None:
        name = frame.f_code.co_filename.replace("\\", "/")
        if any(part in name for part in IMPORT_CODE) or (
            innermost and any(part in name for part in LOCK_CODE)
        ):
            return False
        frame, innermost = frame.f_back, False
    return True
