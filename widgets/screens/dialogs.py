"""Modal screens: every dangerous action asks here; skip and mark-done ask for a reason.

Each modal returns its answer through `dismiss` (None when the operator backs out with
Escape), so the app's action only proceeds on an explicit yes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, SelectionList, Static
from textual.widgets.selection_list import Selection

# Sized for 80x24: a 72-column box, one-line (compact) buttons and inputs.
_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 72; max-width: 100%; height: auto; max-height: 100%;
    border: round $primary; background: $surface; padding: 0 1;
}}
{name} Vertical > * {{ width: 100%; }}
{name} .title {{ text-style: bold; margin-bottom: 1; }}
{name} .hint {{ color: $text-muted; margin-top: 1; }}
{name} .error {{ color: $error; height: auto; }}
{name} Horizontal {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} Button {{ margin-left: 2; width: auto; }}
{name} Input {{ margin-top: 1; }}
"""


class _Modal(ModalScreen[object]):
    BINDINGS = [Binding("escape", "back", "Back", show=False)]

    def action_back(self) -> None:
        self.dismiss(None)


class ConfirmModal(_Modal):
    """Yes / no. Returns True, or None."""

    DEFAULT_CSS = _CSS.format(name="ConfirmModal")

    def __init__(self, title: str, question: str, yes: str = "Yes", danger: bool = False) -> None:
        super().__init__()
        self._title, self._question, self._yes, self._danger = title, question, yes, danger

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title, classes="title")
            yield Static(self._question)
            with Horizontal():
                yield Button("Back (esc)", id="no", compact=True)
                yield Button(self._yes, id="yes", variant="error" if self._danger else "primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(True if event.button.id == "yes" else None)


class ReasonModal(_Modal):
    """Asks for a reason (required). Returns the reason, or None."""

    DEFAULT_CSS = _CSS.format(name="ReasonModal")

    def __init__(self, title: str, question: str, placeholder: str = "why (journaled with your name)") -> None:
        super().__init__()
        self._title, self._question, self._placeholder = title, question, placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title, classes="title")
            yield Static(self._question)
            yield Input(placeholder=self._placeholder, id="reason", compact=True)
            yield Static("", classes="error", id="error")
            yield Static("enter to confirm · esc to go back", classes="hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        reason = event.value.strip()
        if not reason:
            self.query_one("#error", Static).update("A reason is required.")
            return
        self.dismiss(reason)


class TypedConfirmModal(_Modal):
    """The operator must type a word (e.g. GO, ROLLBACK) to say yes. Returns True, or None."""

    DEFAULT_CSS = _CSS.format(name="TypedConfirmModal")

    def __init__(self, title: str, question: str, word: str) -> None:
        super().__init__()
        self._title, self._question, self._word = title, question, word

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title, classes="title")
            yield Static(self._question)
            yield Input(placeholder=f"type {self._word}", id="typed", compact=True)
            yield Static("", classes="error", id="error")
            yield Static("enter to confirm · esc to go back", classes="hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() != self._word:
            self.query_one("#error", Static).update(f"Type exactly {self._word} to confirm.")
            return
        self.dismiss(True)


@dataclass(frozen=True)
class GateAnswer:
    yes: bool
    typed: str | None


class GateModal(_Modal):
    """A step's question: yes / no, with the confirmation word typed when the step asks for one."""

    DEFAULT_CSS = _CSS.format(name="GateModal")

    def __init__(
        self, step_title: str, question: str, confirm: str | None, *, point_of_no_return: bool = False
    ) -> None:
        super().__init__()
        self._step_title, self._question, self._confirm = step_title, question, confirm
        self._point_of_no_return = point_of_no_return

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self._step_title} asks", classes="title")
            if self._point_of_no_return:
                yield Static(
                    Text("⚠ Point of no return: after yes, a rollback needs ROLLBACK typed.", style="bold red")
                )
            yield Static(self._question)
            if self._confirm:
                yield Input(placeholder=f"type {self._confirm} to answer yes", id="typed", compact=True)
            yield Static("", classes="error", id="error")
            with Horizontal():
                yield Button("Back (esc)", id="back", compact=True)
                yield Button("No", id="no", variant="error", compact=True)
                yield Button("Yes", id="yes", variant="success", compact=True)

    def on_mount(self) -> None:
        if self._confirm:
            self.query_one(Input).focus()
        else:
            self.query_one("#back", Button).focus()

    def _yes(self) -> None:
        typed = None
        if self._confirm:
            typed = self.query_one(Input).value.strip()
            if typed != self._confirm:
                self.query_one("#error", Static).update(f"Type exactly {self._confirm} to answer yes.")
                return
        self.dismiss(GateAnswer(True, typed))

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._yes()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "yes":
            self._yes()
        elif event.button.id == "no":
            self.dismiss(GateAnswer(False, None))
        else:
            self.dismiss(None)


@dataclass(frozen=True)
class ChecklistAnswer:
    ticked: list[int]  # the items newly ticked by hand
    note: str  # the operator's note, journaled with each tick
    recheck: bool = False  # run the items' checks again instead


class ChecklistModal(_Modal):
    """Tick items by hand with a note, or run the items' checks again. Returns a ChecklistAnswer, or None."""

    DEFAULT_CSS = (
        _CSS.format(name="ChecklistModal")
        + """
    ChecklistModal SelectionList { height: auto; max-height: 12; }
    ChecklistModal #why { color: $text-muted; height: auto; max-height: 6; }
    """
    )
    BINDINGS = [Binding("ctrl+r", "recheck", "Check again", show=False)]

    def __init__(
        self, step_title: str, items: tuple[str, ...], ticked: frozenset[int], notes: Mapping[int, str] | None = None
    ) -> None:
        super().__init__()
        self._step_title, self._items, self._ticked = step_title, items, ticked
        self._notes = dict(notes or {})

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self._step_title}: checklist", classes="title")
            yield SelectionList[int](
                *[
                    Selection(self._prompt(i), i, i in self._ticked, disabled=i in self._ticked)
                    for i in range(len(self._items))
                ]
            )
            failing = [i for i in sorted(self._notes) if i not in self._ticked]
            if failing:
                # A selection shows one line of its prompt: the reasons go below, wrapped.
                why = Text("\n").join(
                    Text.assemble((f"{i + 1}. ", "bold red"), f"check failed: {self._notes[i]}") for i in failing
                )
                yield Static(why, id="why")
            yield Input(placeholder="note for your ticks (journaled with your name)", id="note", compact=True)
            again = " · ctrl+r runs the checks again" if self._notes else ""
            yield Static(f"space ticks · enter records the ticks{again} · esc goes back", classes="hint")

    def _prompt(self, index: int) -> Text:
        prompt = Text(f"{index + 1}. {self._items[index]}")
        if index in self._notes and index not in self._ticked:
            prompt.append("  ✗", style="red")
        return prompt

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def sync(self, ticked: frozenset[int]) -> None:
        """Items ticked elsewhere meanwhile show ticked and can no longer be changed here."""
        newly = set(ticked) - set(self._ticked)
        if not newly:
            return
        self._ticked = frozenset(ticked)
        if not self.is_mounted:
            return  # compose shows them
        selection = self.query_one(SelectionList)
        for index in sorted(newly):
            selection.select(index)
            selection.disable_option_at_index(index)

    def key_enter(self, event: events.Key) -> None:
        event.stop()
        self._record()

    @on(Input.Submitted, "#note")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._record()

    def _record(self) -> None:
        if self.is_current:  # enter in the note is both a key and a submission: record once
            chosen = set(self.query_one(SelectionList).selected) - set(self._ticked)
            self.dismiss(ChecklistAnswer(sorted(chosen), self.query_one("#note", Input).value))

    def action_recheck(self) -> None:
        if self._notes:
            self.dismiss(ChecklistAnswer([], "", recheck=True))


@dataclass(frozen=True)
class RollbackRequest:
    reason: str
    typed: str | None


class RollbackModal(_Modal):
    """Confirms a rollback: a reason, and ROLLBACK typed when a point of no return has passed."""

    DEFAULT_CSS = (
        _CSS.format(name="RollbackModal")
        + """
    RollbackModal > Vertical { border: round $error; }
    """
    )

    def __init__(self, plan: list[str], ponr_passed: bool, word: str, pending: str | None = None) -> None:
        super().__init__()
        self._plan, self._ponr, self._word, self._pending = plan, ponr_passed, word, pending

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Roll back the go-live?", classes="title")
            if self._pending:
                yield Static(Text(f"A trigger asks for it: {self._pending}", style="bold red"))
            plan = ", ".join(self._plan) if self._plan else "no undo steps yet"
            yield Static(f"Running forward steps are cancelled, then: {plan}.")
            if self._ponr:
                yield Static(Text(f"A point of no return has passed: type {self._word} as well.", style="bold red"))
            yield Input(placeholder="reason (journaled with your name)", id="reason", compact=True)
            if self._ponr:
                yield Input(placeholder=f"type {self._word}", id="typed", compact=True)
            yield Static("", classes="error", id="error")
            with Horizontal():
                yield Button("Back (esc)", id="back", compact=True)
                yield Button("Roll back", id="rollback", variant="error", compact=True)

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def _confirm(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.query_one("#error", Static).update("A reason is required.")
            return
        typed = None
        if self._ponr:
            typed = self.query_one("#typed", Input).value.strip()
            if typed != self._word:
                self.query_one("#error", Static).update(f"Type exactly {self._word} to roll back.")
                return
        self.dismiss(RollbackRequest(reason, typed))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "reason" and self._ponr:
            self.query_one("#typed", Input).focus()
            return
        self._confirm()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "rollback":
            self._confirm()
        else:
            self.dismiss(None)


class QuitModal(ConfirmModal):
    DEFAULT_CSS = _CSS.format(name="QuitModal")
