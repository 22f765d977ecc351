"""One point per vertebral level: naming the point the user places, and following moves.

"Place next level" asks for a level; the next point the user places on the list gets that
name. The request ends when the point is placed, when the user leaves place mode, or when the
code rewrites the list (automatic detection, relabelling), so a stale request never renames a
point (points added in code fire the same "position defined" event).
"""

import slicer
from slicer.util import VTKObservationMixin


class LevelPoints(VTKObservationMixin):
    """Observes the level-point list and the interaction node for the panel.

    ``onLevelChanged(markupsNode, level)`` is called when a requested point was placed or a
    point was moved (with the level the point names).
    """

    def __init__(self, onLevelChanged):
        VTKObservationMixin.__init__(self)
        self.onLevelChanged = onLevelChanged
        self.pendingLevel = None
        self.markupsNode = None
        interaction = slicer.app.applicationLogic().GetInteractionNode()
        if interaction is not None:
            event = slicer.vtkMRMLInteractionNode.InteractionModeChangedEvent
            self.addObserver(interaction, event, self.onInteractionModeChanged)

    def observe(self, markupsNode):
        """Follow ``markupsNode`` (None: none)."""
        if markupsNode is self.markupsNode:
            return
        events = (
            (slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onPointDefined),
            (slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent, self.onPointMoved),
        )
        for event, handler in events:
            if self.markupsNode is not None:
                self.removeObserver(self.markupsNode, event, handler)
            if markupsNode is not None:
                self.addObserver(markupsNode, event, handler)
        self.markupsNode = markupsNode

    def request(self, level):
        """The next point placed on the list is ``level`` (None: no request)."""
        self.pendingLevel = level

    def onInteractionModeChanged(self, caller, event):
        if caller.GetCurrentInteractionMode() != slicer.vtkMRMLInteractionNode.Place:
            self.pendingLevel = None  # the user left place mode without placing

    def onPointDefined(self, caller, event):
        if self.pendingLevel is None:
            return
        index = caller.GetNumberOfControlPoints() - 1
        caller.SetNthControlPointLabel(index, self.pendingLevel)
        level, self.pendingLevel = self.pendingLevel, None
        self.onLevelChanged(caller, level)

    def onPointMoved(self, caller, event):
        # set by Slicer's markups widget while a point is dragged ("" or None otherwise)
        index = caller.GetAttribute("Markups.MovingMarkupIndex")
        if index:
            self.onLevelChanged(caller, caller.GetNthControlPointLabel(int(index)))
