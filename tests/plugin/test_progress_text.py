"""The engine's typed progress in words and on Processing's feedback: stage titles from the
update's stage, values and events (never from log text); the bar from the job's own fraction,
never backwards; each message said once."""

from __future__ import annotations

from mapscribe.model import EpochEnded, ProgressUpdate, Stage
from mapscribe.plugin.processing.common import FeedbackReporter
from mapscribe.plugin.progress_text import counts_text, stage_title, status_line


def test_stage_titles_come_from_stages_values_and_events():
    assert stage_title(ProgressUpdate(Stage.TRAINING, 3, 30, "images",
                                      values={"epoch": 2, "epochs": 5})) == "epoch 2/5"
    event = EpochEnded(4, 2.5, epochs=5)
    assert stage_title(ProgressUpdate(Stage.TRAINING, 1, 1, event=event)) == "epoch 4/5"
    assert stage_title(ProgressUpdate(Stage.SCORING, 1, 9, values={"split": "test"})) == (
        "scoring the test split")
    assert stage_title(ProgressUpdate(Stage.ENCODING, 1, 9)) == "encoding the images"
    assert stage_title(ProgressUpdate(Stage.CAPTIONING, 1, 9)) == "captioning"
    assert stage_title(ProgressUpdate("a new stage", 1, 9)) == "a new stage"


def test_counts_and_status_lines():
    update = ProgressUpdate(Stage.CAPTIONING, 12, 42, "tiles", rate=3.14, eta_s=10.0)
    assert counts_text(update) == "12 of 42 tiles, 3.1 tiles/s, 00:10 left"
    training = ProgressUpdate(Stage.TRAINING, 8, 30, "images", values={"epoch": 1, "epochs": 3,
                                                                        "loss": 4.25})
    assert status_line(training) == "epoch 1/3: 8 of 30 images, loss 4.250"
    assert status_line(ProgressUpdate(Stage.TRAINING, 1, 1, message="epoch 1/3, …")) == (
        "epoch 1/3, …")


class _Feedback:
    def __init__(self) -> None:
        self.texts, self.progress, self.infos, self.warnings = [], [], [], []
        self.cancelled = False

    def setProgressText(self, text):
        self.texts.append(text)

    def setProgress(self, value):
        self.progress.append(value)

    def pushInfo(self, text):
        self.infos.append(text)

    def pushWarning(self, text):
        self.warnings.append(text)

    def isCanceled(self):  # noqa: N802 - QgsProcessingFeedback's name
        return self.cancelled


def test_feedback_follows_the_job_fraction_and_says_each_message_once():
    feedback = _Feedback()
    report = FeedbackReporter(feedback)
    report(ProgressUpdate(Stage.ENCODING, 5, 10, "images", job_fraction=0.05))
    report(ProgressUpdate(Stage.TRAINING, 15, 30, "images", job_fraction=0.4,
                          values={"epoch": 1, "epochs": 2}))
    event = EpochEnded(1, 4.0, epochs=2)
    report(ProgressUpdate(Stage.TRAINING, 1, 1, message=event.describe(), job_fraction=0.5,
                          event=event))
    report.info(event.describe())  # the engine also logs it: said once
    report(ProgressUpdate(Stage.SCORING, 1, 4, "images", job_fraction=0.45,
                          values={"split": "val"}))
    assert feedback.texts == ["encoding the images", "epoch 1/2", "scoring the val split"]
    assert feedback.progress == [5.0, 40.0, 50.0, 50.0]  # never backwards
    assert feedback.infos == [event.describe()]
    report(ProgressUpdate(Stage.CAPTIONING, 3, 4))  # a job without a plan: the stage's own
    assert feedback.progress[-1] == 75.0
    feedback.cancelled = True
    assert report.cancelled()
