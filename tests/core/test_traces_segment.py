"""MRT's episode segmentation (ttc_gym.traces.segment) on hand-made R1-style traces."""

from __future__ import annotations

import pytest

from ttc_gym.traces.segment import segment_trace, split_pieces, starts_episode

R1_TRACE = "\n\n".join([
    "Okay, so I need to find 12 * 13.",                     # 0
    "12 * 13 = 12 * 10 + 12 * 3 = 120 + 36 = 156.",         # 1
    "So the product is 156.",                               # 2
    "Wait, let me check that with another split.",          # 3  marker, 3 after 0: boundary
    "13 * 12 = 13 * 10 + 13 * 2 = 130 + 26 = 156.",         # 4
    "But wait, is 13 * 2 really 26? Yes.",                  # 5  marker, 2 after 3: too close
    "Both give 156.",                                       # 6
    "Alternatively, (12.5)^2 - 0.25 = 156.25 - 0.25.",      # 7  marker, 4 after 3: boundary
    "That is 156 again.",                                   # 8
    "So the answer is 156.",                                # 9
])


def test_boundaries_at_markers_with_mrt_minimum_gap():
    pieces = split_pieces(R1_TRACE)
    assert [p.split("\n\n")[0][:12] for p in pieces] == ["Okay, so I n", "Wait, let me", "Alternativel"]
    # "But wait" (paragraph 5) is two paragraphs after the boundary at 3: it stays inside that piece.
    assert "But wait, is 13 * 2" in pieces[1]
    # Nothing is lost: the pieces join back into the trace.
    assert "\n\n".join(pieces) == R1_TRACE


def test_markers_too_close_to_the_start_do_not_split():
    text = "Wait, what is 2+2?\n\nBut wait, it is 4.\n\nAlternatively, 2*2.\n\nSo 4."
    # markers at paragraphs 0, 1, 2 are all fewer than 3 after the start (paragraph 0)
    assert split_pieces(text) == [text]
    # a smaller gap lets them split
    assert split_pieces(text, min_gap=1) == ["Wait, what is 2+2?", "But wait, it is 4.", "Alternatively, 2*2.\n\nSo 4."]


def test_marker_inside_a_word_is_not_a_boundary():
    text = "A.\n\nB.\n\nC.\n\nWaiting for the sum, I add 2 and 2.\n\nAlternatives exist.\n\nButwait no.\n\nD."
    assert not starts_episode("Waiting for the sum")
    assert not starts_episode("Alternatives exist.")
    assert starts_episode("Wait, no") and starts_episode("Wait.") and starts_episode("  But hold on")
    assert starts_episode("Is there another way to think about this? Yes.")
    assert split_pieces(text) == [text]


def test_trace_without_markers_is_one_episode():
    text = "Step one.\n\nStep two.\n\nStep three.\n\nThe answer is 7."
    assert segment_trace(text) == [text]
    assert segment_trace("") == []


def test_group_merging_and_max_pieces():
    paragraphs = []
    for i in range(12):  # a boundary every 3 paragraphs: 12 pieces
        paragraphs += [f"Wait, attempt {i}.", f"work {i}", f"result {i}"]
    text = "\n\n".join(paragraphs)
    assert len(split_pieces(text)) == 12
    episodes = segment_trace(text, group_size=5)  # MRT merges 5 pieces into one episode: 5 + 5 + 2
    assert len(episodes) == 3
    assert episodes[1].startswith("Wait, attempt 5.") and episodes[2].startswith("Wait, attempt 10.")
    assert "\n\n".join(episodes) == text
    capped = split_pieces(text, max_pieces=4)  # after 4 pieces the rest is one
    assert len(capped) == 5 and capped[4].startswith("Wait, attempt 4.") and capped[4].endswith("result 11")


def test_configurable_markers():
    text = "a\n\nb\n\nc\n\nHmm, maybe not.\n\nd"
    assert split_pieces(text) == [text]
    assert split_pieces(text, markers=["Hmm"]) == ["a\n\nb\n\nc", "Hmm, maybe not.\n\nd"]
    with pytest.raises(ValueError, match="markers"):
        split_pieces(text, markers=[])
    with pytest.raises(ValueError, match="markers"):
        split_pieces(text, markers="Hmm")
