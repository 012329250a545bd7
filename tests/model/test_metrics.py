"""Caption metrics against the COCO caption evaluation (pycocoevalcap) on real RSICD/UCM captions:
the committed UCM sample (tests/data/ucm-sample, so the comparison runs on any clone) and, when
../shared/data is there, 150 images of UCM-captions and of the RSICD subset.

Both implementations are fed the same words: captions are split with MapScribe's tokeniser and
joined with spaces, and pycocoevalcap's scorers are called directly (its PTB tokeniser is
bypassed), so any difference is a difference in the metrics themselves.
"""

from __future__ import annotations

import json
import random
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from locations import UCM_SAMPLE
from mapscribe.model.data.text import tokenize
from mapscribe.model.evaluation.bleu import corpus_bleu
from mapscribe.model.evaluation.cider import corpus_cider_d
from mapscribe.model.evaluation.meteor import MeteorError, MeteorScorer, find_meteor
from mapscribe.model.evaluation.rouge import corpus_rouge_l
from mapscribe.model.evaluation.scores import evaluate_captions, evaluate_tokenized

pycocoevalcap = pytest.importorskip("pycocoevalcap", reason="pycocoevalcap (a test dependency) "
                                    "is the reference implementation these tests compare with")
from pycocoevalcap.bleu.bleu import Bleu  # noqa: E402 - after the importorskip above
from pycocoevalcap.cider.cider import Cider  # noqa: E402 - after the importorskip above
from pycocoevalcap.rouge.rouge import Rouge  # noqa: E402 - after the importorskip above

IMAGES_PER_DATASET = 150
UCM_SAMPLE_IMAGES = 8
# "sample": every image of tests/data/ucm-sample (8 images, 5 captions each), always there;
# "ucm", "rsicd": IMAGES_PER_DATASET images of each dataset in ../shared/data.
DATASETS = ("sample", "ucm", "rsicd")
VARIANTS = ("first_reference", "shuffled", "truncated", "other_image")

WordCorpus = Tuple[Dict[int, List[str]], Dict[int, List[List[str]]]]


@lru_cache(maxsize=None)
def _references(annotations: Path, count: int = IMAGES_PER_DATASET
                ) -> Dict[int, Tuple[Tuple[str, ...], ...]]:
    """Tokenised references of ``count`` images spread over the whole dataset.

    Captions without words (RSICD has a caption ".") are left out, as the data layer does.
    """
    images = json.loads(annotations.read_text(encoding="utf-8"))["images"]
    step = max(1, len(images) // count)  # datasets are ordered by class: spread out
    chosen = {}
    for image in images[::step]:
        words = [tuple(tokenize(sentence["raw"])) for sentence in image["sentences"]]
        words = tuple(w for w in words if w)
        if len(words) >= 2:
            chosen[image["imgid"]] = words
        if len(chosen) == count:
            break
    assert len(chosen) == count
    return chosen


def _dataset_references(request, dataset: str) -> Dict[int, Tuple[Tuple[str, ...], ...]]:
    if dataset == "sample":
        return _references(UCM_SAMPLE / "annotations.json", UCM_SAMPLE_IMAGES)
    folder = request.getfixturevalue(f"{dataset}_folder")
    return _references(folder / "annotations.json")


def _corpus(request, dataset: str, variant: str) -> WordCorpus:
    """Candidates and references (word lists) of one dataset, candidates made as ``variant``.

    first_reference: each image's first reference against the other ones (the human score);
    shuffled: its words in random order; truncated: its first half (every tenth one empty);
    other_image: the first reference of the next image (a wrong caption).
    """
    everything = _dataset_references(request, dataset)
    keys = list(everything)
    rng = random.Random(f"{dataset}-{variant}")
    candidates, references = {}, {}
    for index, key in enumerate(keys):
        first = list(everything[key][0])
        references[key] = [list(words) for words in everything[key][1:]]
        if variant == "first_reference":
            candidates[key] = first
        elif variant == "shuffled":
            rng.shuffle(first)
            candidates[key] = first
        elif variant == "truncated":
            candidates[key] = [] if index % 10 == 0 else first[:max(1, len(first) // 2)]
        elif variant == "other_image":
            candidates[key] = list(everything[keys[(index + 1) % len(keys)]][0])
        else:
            raise AssertionError(variant)
    return candidates, references


def _coco_format(candidates, references):
    """The dicts pycocoevalcap's scorers take: id -> list of space-joined captions."""
    gts = {key: [" ".join(words) for words in refs] for key, refs in references.items()}
    res = {key: [" ".join(candidates[key])] for key in references}
    return gts, res


def _coco_scores(candidates, references) -> Dict[str, float]:
    gts, res = _coco_format(candidates, references)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    return {"BLEU-1": bleu[0], "BLEU-2": bleu[1], "BLEU-3": bleu[2], "BLEU-4": bleu[3],
            "ROUGE-L": float(rouge), "CIDEr-D": float(cider)}


def _our_scores(candidates, references) -> Dict[str, float]:
    bleu = corpus_bleu(candidates, references)
    return {"BLEU-1": bleu[0], "BLEU-2": bleu[1], "BLEU-3": bleu[2], "BLEU-4": bleu[3],
            "ROUGE-L": corpus_rouge_l(candidates, references),
            "CIDEr-D": corpus_cider_d(candidates, references)}


def _require_meteor():
    setup = find_meteor()
    if not setup.available:
        pytest.skip(f"METEOR cannot run here: {setup.unavailable_reason}")


# -- BLEU, ROUGE-L, CIDEr-D ---------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_bleu_rouge_cider_equal_pycocoevalcap_on_real_captions(request, dataset, variant):
    candidates, references = _corpus(request, dataset, variant)
    ours = _our_scores(candidates, references)
    coco = _coco_scores(candidates, references)
    assert ours == pytest.approx(coco, abs=1e-6, rel=0)
    # The variants must be telling apart: a real metric ranks a wrong caption below a human one.
    if variant == "other_image":
        human = _our_scores(*_corpus(request, dataset, "first_reference"))
        assert ours["CIDEr-D"] < human["CIDEr-D"] and ours["BLEU-4"] < human["BLEU-4"]


def test_candidate_equal_to_a_reference_scores_as_coco(rsicd_folder):
    """A candidate found among its references: BLEU is 1 up to COCO's smoothing constants."""
    everything = _references(rsicd_folder / "annotations.json")
    candidates = {key: list(refs[0]) for key, refs in everything.items()}
    references = {key: [list(words) for words in refs] for key, refs in everything.items()}
    ours = _our_scores(candidates, references)
    assert ours == pytest.approx(_coco_scores(candidates, references), abs=1e-6, rel=0)
    for n in (1, 2, 3, 4):
        # COCO divides (matches + 1e-15) by (n-grams + 1e-9): just below 1, never above.
        assert 1 - 1e-9 < ours[f"BLEU-{n}"] < 1
    assert ours["ROUGE-L"] == 1.0


def test_cider_d_is_ten_when_every_reference_equals_the_candidate(rsicd_folder):
    everything = _references(rsicd_folder / "annotations.json")
    # Captions of at least four words, so that every n-gram order has something to compare.
    chosen = {key: list(refs[0]) for key, refs in everything.items() if len(refs[0]) >= 4}
    references = {key: [words, list(words)] for key, words in chosen.items()}
    ours = corpus_cider_d(chosen, references)
    coco, _ = Cider().compute_score(*_coco_format(chosen, references))
    assert ours == pytest.approx(10.0, abs=1e-9)
    assert ours == pytest.approx(coco, abs=1e-6)


def test_empty_candidates_score_zero_without_error(ucm_folder):
    everything = _references(ucm_folder / "annotations.json")
    candidates = {key: "" for key in everything}
    references = {key: [" ".join(words) for words in refs] for key, refs in everything.items()}
    scores = evaluate_captions(candidates, references, meteor=False)
    assert scores.bleu1 < 1e-6 and scores.bleu4 < 1e-6
    assert scores.rouge_l == 0.0 and scores.cider_d == 0.0
    assert scores.images == len(everything)


# -- METEOR -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def meteor_pair():
    """Our METEOR scorer and pycocoevalcap's, started together (Java loads in parallel)."""
    _require_meteor()
    from pycocoevalcap.meteor.meteor import Meteor
    with MeteorScorer() as ours:
        theirs = Meteor()
        yield ours, theirs
        # pycocoevalcap's scorer kills its Java process only in __del__ and never closes the
        # pipes: end it here, so no process or file outlives the tests.
        process = theirs.meteor_p
        process.stdin.close()
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_meteor_equals_pycocoevalcap_on_real_captions(request, meteor_pair, dataset, variant):
    ours, theirs = meteor_pair
    candidates, references = _corpus(request, dataset, variant)
    coco, _ = theirs.compute_score(*_coco_format(candidates, references))
    mine = ours.corpus_score(candidates, references)
    assert mine == pytest.approx(coco, abs=1e-3)
    assert 0 < mine < 1


def test_evaluate_captions_runs_every_metric_on_caption_strings(ucm_folder, meteor_pair):
    """The main entry point: raw captions in, COCO's seven figures out (its own Java process)."""
    _, coco_meteor = meteor_pair
    folder_json = json.loads((ucm_folder / "annotations.json").read_text(encoding="utf-8"))
    raw = {image["imgid"]: [s["raw"] for s in image["sentences"]]
           for image in folder_json["images"][::14][:IMAGES_PER_DATASET]}
    # Upper case and punctuation must not matter: the project's tokeniser removes them.
    candidates = {key: captions[0].upper().replace(" .", "!!") for key, captions in raw.items()}
    references = {key: captions[1:] for key, captions in raw.items()}

    scores = evaluate_captions(candidates, references)

    words = {key: tokenize(caption) for key, caption in candidates.items()}
    ref_words = {key: [tokenize(caption) for caption in refs] for key, refs in references.items()}
    expected = _coco_scores(words, ref_words)
    expected["METEOR"], _ = coco_meteor.compute_score(*_coco_format(words, ref_words))
    assert list(scores.as_dict()) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR",
                                      "ROUGE-L", "CIDEr-D"]
    got = scores.as_dict()
    assert got.pop("METEOR") == pytest.approx(expected.pop("METEOR"), abs=1e-3)
    assert got == pytest.approx(expected, abs=1e-6, rel=0)
    assert scores.meteor_unavailable_reason is None
    assert evaluate_tokenized(words, ref_words, meteor=False).as_dict() == dict(got, METEOR=None)


def test_meteor_process_ends_when_the_scorer_closes():
    _require_meteor()
    with MeteorScorer() as scorer:
        value = scorer.corpus_score({"a": ["a", "red", "car"]}, {"a": [["a", "car"]]})
        assert 0 < value < 1
        process = scorer._process
    assert process.returncode == 0  # ended on end of input, not killed


def test_meteor_that_does_not_answer_in_time_is_stopped_not_waited_for():
    _require_meteor()
    # Java takes seconds to load METEOR's paraphrase tables: a 50 ms limit cannot be met.
    with MeteorScorer(timeout_s=0.05) as scorer:
        with pytest.raises(MeteorError, match=r"did not answer within 0.05 s"):
            scorer.corpus_score({"a": ["a", "car"]}, {"a": [["a", "car"]]})
        assert scorer._process.poll() is not None
        with pytest.raises(MeteorError, match="stopped|not running"):
            scorer.corpus_score({"a": ["a", "car"]}, {"a": [["a", "car"]]})


def test_meteor_is_unavailable_not_zero_when_the_jar_is_missing(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere" / "meteor-1.5.jar"
    monkeypatch.setenv("MAPSCRIBE_METEOR_JAR", str(missing))
    scores = evaluate_captions({1: "a red car"}, {1: ["a red car on a road", "a car"]})
    assert scores.meteor is None and scores.as_dict()["METEOR"] is None
    assert "MAPSCRIBE_METEOR_JAR" in scores.meteor_unavailable_reason
    assert str(missing) in scores.meteor_unavailable_reason
    assert scores.bleu1 > 0.5  # the other metrics are still there


def test_meteor_is_unavailable_when_java_is_not_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a real PATH, with no java in it
    monkeypatch.delenv("MAPSCRIBE_METEOR_JAR", raising=False)
    assert shutil.which("java") is None
    scores = evaluate_captions({1: "a red car"}, {1: ["a red car on a road", "a car"]})
    assert scores.meteor is None
    assert "Java is not installed" in scores.meteor_unavailable_reason
    assert scores.cider_d == 0.0  # one image: every n-gram is in every image, as in COCO


def test_meteor_that_cannot_start_is_reported_with_what_java_said(monkeypatch, tmp_path):
    if shutil.which("java") is None:
        pytest.skip("needs Java on PATH, to see it reject a broken jar")
    broken = tmp_path / "meteor-1.5.jar"
    broken.write_text("not a jar")
    monkeypatch.setenv("MAPSCRIBE_METEOR_JAR", str(broken))
    scores = evaluate_captions({1: "a red car"}, {1: ["a car"]})
    assert scores.meteor is None
    assert "exit code" in scores.meteor_unavailable_reason
    assert "jar" in scores.meteor_unavailable_reason.lower()


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("candidates, references, message", [
    ({}, {}, "no captions to evaluate"),
    ({1: "a car", 2: "a road"}, {1: ["a car"], 3: ["a road"]},
     r"1 image id\(s\) have a candidate but no references: \[2\]; "
     r"1 image id\(s\) have references but no candidate: \[3\]"),
    ({"x.jpg": "a car", "y.jpg": "a road"}, {"x.jpg": ["a car"], "y.jpg": []},
     r"1 image\(s\) have no reference captions: \['y.jpg'\]"),
    ({1: "a car"}, {1: "a car"}, "references of image 1 must be a list of captions, not one "
                                 "string"),
    ({1: "a car"}, {1: ["a car", " . "]}, r"reference 1 of image 1 has no words \(' \. '\)"),
    ({1: ["a", "car"]}, {1: ["a car"]}, "the candidate of image 1 must be a caption string, not "
                                        "list"),
])
def test_bad_input_is_refused_naming_the_images(candidates, references, message):
    with pytest.raises(ValueError, match=message):
        evaluate_captions(candidates, references, meteor=False)


def test_many_mismatched_ids_are_summarised():
    candidates = {index: "a car" for index in range(30)}
    summary = r"30 image id\(s\) .*\[0, 1, 2, .* 9, \.\.\. and 20 more\]"
    with pytest.raises(ValueError, match=summary):
        evaluate_captions(candidates, {"other": ["a car"]}, meteor=False)


def test_word_list_functions_refuse_strings_and_words_with_spaces():
    with pytest.raises(ValueError, match="the candidate of image 1 must be a list of words"):
        corpus_bleu({1: "a car"}, {1: [["a", "car"]]})
    with pytest.raises(ValueError, match=r"reference 0 of image 1 holds 'a car'"):
        corpus_cider_d({1: ["a", "car"]}, {1: [["a car"]]})
