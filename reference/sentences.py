"""A fixed English test corpus for sentence-embedding checks.

``SENTENCES`` holds 15 paraphrase pairs (indices ``2i`` and ``2i + 1`` for
``i < 15``), then 14 sentences on unrelated topics, one long sentence (about 40
tokens) and one very short one, so a batch of them has varied lengths and
real padding. ``PARAPHRASE_PAIRS`` lists the paraphrase index pairs;
``UNRELATED_PAIRS`` lists pairs on clearly different topics.

>>> len(SENTENCES) >= 40
True
>>> SENTENCES[PARAPHRASE_PAIRS[0][0]], SENTENCES[PARAPHRASE_PAIRS[0][1]]
('The cat is sleeping on the warm windowsill.', 'A cat naps in the sun by the window.')
"""

from __future__ import annotations

__all__ = ["PARAPHRASE_PAIRS", "SENTENCES", "UNRELATED_PAIRS"]

SENTENCES: tuple[str, ...] = (
    # 15 paraphrase pairs: (0, 1), (2, 3), ..., (28, 29)
    "The cat is sleeping on the warm windowsill.",
    "A cat naps in the sun by the window.",
    "The stock market fell sharply after the interest rate announcement.",
    "Share prices dropped steeply once the central bank raised rates.",
    "How do I reset my email password?",
    "What is the way to change a forgotten email password?",
    "The train to Boston was delayed by two hours.",
    "Our Boston-bound train arrived two hours late.",
    "She is learning to play the piano.",
    "She takes piano lessons to learn the instrument.",
    "Heavy rain is expected across the region tomorrow.",
    "Forecasters predict downpours throughout the area tomorrow.",
    "The children built a sandcastle on the beach.",
    "Kids made a castle out of sand at the seaside.",
    "The new smartphone has a longer battery life than the previous model.",
    "Battery life on the latest phone lasts longer than on its predecessor.",
    "He cooked pasta with tomato sauce for dinner.",
    "For dinner he made spaghetti in a tomato sauce.",
    "The doctor advised him to get more sleep.",
    "His physician told him he should rest more at night.",
    "The museum is closed on Mondays.",
    "On Mondays the museum does not open.",
    "A dog is chasing a ball in the park.",
    "In the park, a dog runs after a ball.",
    "The company announced record profits this quarter.",
    "The firm reported its highest quarterly earnings ever.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "At sea level, water reaches its boiling point at 100 degrees Celsius.",
    "The flight was cancelled because of a snowstorm.",
    "A blizzard forced the airline to cancel the flight.",
    # 30..43: unrelated topics, a long sentence and a very short one
    "Photosynthesis converts sunlight into chemical energy in plants.",
    "The orchestra tuned their instruments before the concert began.",
    "Quantum computers use qubits that can exist in superposition.",
    "My grandmother knits warm scarves every winter.",
    "The referee showed the defender a red card in the final minute.",
    "Volcanic eruptions can throw ash high into the atmosphere.",
    "He parked his bicycle outside the library.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Ancient Romans built aqueducts to carry water into their cities.",
    "Please remember to water the tomato plants while I am away.",
    "The software update fixed a bug that crashed the application on startup.",
    "Bees communicate the location of flowers through a waggle dance.",
    (
        "Although the committee had debated the proposal for several months, weighing the cost of "
        "construction against the expected benefits for local residents, it finally voted to approve "
        "the new bridge across the river."
    ),
    "Thank you!",
)

PARAPHRASE_PAIRS: tuple[tuple[int, int], ...] = tuple((2 * i, 2 * i + 1) for i in range(15))

UNRELATED_PAIRS: tuple[tuple[int, int], ...] = (
    (0, 2),
    (4, 12),
    (6, 32),
    (8, 35),
    (10, 24),
    (14, 38),
    (16, 34),
    (18, 41),
    (20, 30),
    (22, 40),
    (26, 33),
    (28, 37),
    (30, 34),
    (31, 40),
    (32, 33),
    (36, 41),
    (3, 13),
    (5, 23),
    (9, 27),
    (42, 0),
)
