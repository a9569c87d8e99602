"""The calibration corpus of the integer MiniLM: text written for intsim, by kind.

A sentence-embedding model meets every kind of text, so its static ranges must come from every
kind: one-word replies, punctuation, numbers, code, lists, non-ASCII text, repeated words and
inputs up to the model's 256-token limit, besides plain prose. :data:`CALIBRATION_CORPUS` maps each
kind to its sentences (all written for this project; none of them is in the evaluation sets of
``reference/``). :func:`calibration_split` divides it into the part whose activations set the
ranges (``"fit"``) and the part on which the activation margin and the smoothing strength are
chosen (``"tune"``), every kind in both.

>>> sorted(CALIBRATION_CORPUS)[:3]
['code', 'dialogue', 'list']
>>> fit, tune = calibration_split()
>>> len(fit) + len(tune) == sum(len(v) for v in CALIBRATION_CORPUS.values())
True
"""

from __future__ import annotations

__all__ = ["CALIBRATION_CORPUS", "calibration_sentences", "calibration_split"]

_LONG_1 = (
    "The harbour town had been built on a narrow strip of land between the cliffs and the sea, and for "
    "three hundred years its people had lived from fishing, from the salt pans south of the river and, "
    "later, from the summer visitors who came on the coastal railway. When the railway closed, the "
    "hotels emptied one after another; the council tried festivals, a marina and a museum of ship "
    "models, but the young still left for the cities. What finally changed the town was a small "
    "software company founded by two sisters who had grown up above the bakery: they hired locally, "
    "trained people who had never written a line of code, and within ten years employed more people "
    "than the fishing fleet ever had. Today the old net lofts hold offices, the bakery sells "
    "sourdough to programmers, and the museum of ship models has a waiting list for school visits."
)
_LONG_2 = (
    "To replace the filter cartridge, first switch off the pump at the wall socket and wait until the "
    "pressure gauge reads zero. Unscrew the housing counter-clockwise by hand; if it is stuck, use the "
    "plastic wrench supplied with the unit, never a metal one, because the thread cracks easily. Pull "
    "the old cartridge straight out, rinse the housing with clean water, check that the rubber O-ring "
    "sits evenly in its groove and apply a thin film of silicone grease. Insert the new cartridge with "
    "the arrow pointing in the direction of flow, screw the housing back on until it is hand-tight, "
    "open the bleed valve and switch the pump on again. Close the valve as soon as water without air "
    "bubbles comes out, then note the date of the change on the label on the side of the unit."
)
_LONG_3 = (
    "Minutes of the residents' meeting, 14 March: present were 23 households out of 40. Item 1, the "
    "roof repair: the surveyor's report estimates 18,500 euros for the north side and 9,200 for the "
    "chimneys; the meeting agreed to request two more quotes before the end of April. Item 2, bicycle "
    "storage: a shed for 30 bicycles can be built in the courtyard for about 4,000 euros, to be paid "
    "from the reserve fund; approved with 19 votes for, 2 against and 2 abstentions. Item 3, the "
    "heating schedule: from October the boiler will run from 6:00 to 22:00 on weekdays and from 7:00 "
    "to 23:00 at weekends. Item 4, any other business: the lift inspection is due on 2 June, and "
    "residents are asked not to leave furniture in the stairwell. The next meeting is on 12 September."
)
_LONG_4 = (
    "def merge_intervals(intervals):\n"
    "    \"\"\"Merge overlapping [start, end] pairs and return them sorted.\"\"\"\n"
    "    result = []\n"
    "    for start, end in sorted(intervals):\n"
    "        if result and start <= result[-1][1]:\n"
    "            result[-1][1] = max(result[-1][1], end)\n"
    "        else:\n"
    "            result.append([start, end])\n"
    "    return result\n\n"
    "# Example: merge_intervals([[1, 3], [2, 6], [8, 10], [15, 18]]) returns [[1, 6], [8, 10], [15, 18]];\n"
    "# the cost is O(n log n) for the sort and O(n) for the scan, with n the number of intervals."
)

_LONG_5 = (
    "Field notes, third week of the survey. We left the hut at six, before the fog lifted from the "
    "valley floor, and followed the old mule track along the eastern ridge. The first transect "
    "crossed a meadow that had been grazed until last autumn: the grass was short, there were "
    "molehills everywhere and we counted fourteen species of flowering plants in the first plot, "
    "mostly clover, yarrow and two kinds of buttercup. Higher up, where the sheep never go, the "
    "picture changed completely. Dwarf shrubs covered almost half of every plot, the soil was "
    "darker and wetter, and we found three orchids that nobody on the team had expected at this "
    "altitude. Around noon the wind turned and heavy clouds came over the pass, so we skipped the "
    "last two plots and marked them for Thursday. On the way down Anna noticed fresh tracks of a "
    "large deer crossing the stream below the waterfall; we photographed them next to a ruler and "
    "added them to the wildlife log. In the evening we entered the data, checked the GPS points "
    "against the map, recharged the batteries and repaired the broken tripod with tape and a piece "
    "of fence wire. Tomorrow we start the western slope, which is steeper and has no path at all, "
    "so everyone will carry less food and more water, and we will leave the heavy camera at the hut. "
    "If the weather holds we should finish the whole survey by Sunday, two days earlier than planned, "
    "which would leave time to repeat the plots where the counts looked doubtful."
)

#: Kind -> sentences. Written for intsim; none is in ``reference.sentences`` or ``reference.evaluation``.
CALIBRATION_CORPUS: dict[str, tuple[str, ...]] = {
    "prose": (
        "The old lighthouse keeper climbed the spiral stairs every evening at dusk.",
        "Interest rates and inflation figures moved the bond market this week.",
        "A group of hikers reached the summit just before the storm rolled in.",
        "The chef seasoned the soup with thyme, garlic and a little lemon.",
        "Researchers measured the speed of sound in cold, dry air near the glacier, repeating the "
        "experiment on three consecutive mornings to average out the effect of the wind.",
        "Two teams will play the championship final in the new stadium on Saturday.",
        "My neighbour's parrot can whistle the first bars of a famous symphony.",
        "The committee postponed its decision until the auditors deliver their report.",
        "Fresh snow covered the village, and the school buses could not run.",
        "She repaired the broken chair with glue, two screws and a lot of patience.",
        "Electric cars need fewer moving parts than cars with combustion engines.",
        "The museum acquired a rare map drawn by a sixteenth-century navigator.",
        "Farmers harvested the grapes early because of the long, hot summer.",
        "Customs officers inspected every container arriving at the harbour last night.",
        "A spoonful of honey in warm milk helps some people fall asleep.",
        "The bridge was closed for repairs, so the ferry ran twice as often.",
        "Volunteers planted four hundred oak saplings along the river bank.",
        "The orchestra rehearsed the final movement until the conductor was satisfied.",
    ),
    "question": (
        "Can you tell me how to install the printer driver on a laptop?",
        "Where is the nearest pharmacy that stays open after midnight?",
        "Why does the moon look larger when it is close to the horizon?",
        "Is it safe to eat mushrooms that grow in the garden?",
        "How long does it take to learn to drive a car with a manual gearbox?",
        "What happens to my pension if I move to another country?",
        "Which train should I take to get to the airport before seven?",
        "Does this jacket come in a larger size?",
        "Who wrote the song that was playing in the café yesterday?",
        "Should I water tomatoes in the morning or in the evening?",
    ),
    "short": (
        "Good morning!",
        "Thanks a lot, see you tomorrow.",
        "Sure.",
        "No way!",
        "Maybe later.",
        "Okay, fine.",
        "Not really.",
        "I agree.",
        "Hello?",
        "Of course!",
        "Never mind.",
        "Yes",
        "Why not?",
        "Great job!",
        "Sounds good to me.",
        "Wait.",
        "Nope.",
        "Cheers!",
    ),
    "punctuation": (
        "!!!",
        "...",
        "?!",
        "-- * --",
        "(see above)",
        "[citation needed]",
        "#",
        "\"Well,\" she said, \"that's that.\"",
        "Wait -- what?! No... really?",
        "* * *",
        "::",
        "<<< >>>",
        "$ % & @",
        ":-)",
    ),
    "numbers": (
        "The invoice total is 1,284.50 euros, due on 2024-03-31.",
        "Call 0800 555 0199 between 9:00 and 17:30.",
        "3.14159 26535 89793",
        "Population grew from 4.2 million in 1990 to 5.9 million in 2020.",
        "Room 12B, floor 7, building 3",
        "The recipe needs 250 g flour, 3 eggs and 0.5 l of milk.",
        "42",
        "Q3 revenue: $18.7M (+12% YoY), EBITDA margin 21.4%.",
        "Set the oven to 180 degrees and bake for 35 to 40 minutes.",
        "1 2 3 4 5 6 7 8 9 10",
        "Flight LH 2047 departs at 06:45 from gate B22.",
        "The temperature fell to -17.5 C overnight.",
    ),
    "code": (
        "for i in range(10): print(i * i)",
        "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 5;",
        "git commit -m \"fix off-by-one error in parser\"",
        "if (ptr == NULL) { return -1; }",
        "const total = items.reduce((a, b) => a + b.price, 0);",
        "pip install --upgrade numpy",
        "https://example.org/docs/api/v2/users?id=17&sort=desc",
        "x = np.zeros((3, 4), dtype=np.float32)",
        "<div class=\"header\"><a href=\"/home\">Home</a></div>",
        "ERROR 2024-01-05 12:00:03 worker-3 TimeoutError: connection reset by peer",
        "{\"id\": 12, \"name\": \"widget\", \"tags\": [\"blue\", \"small\"]}",
        "ls -la /var/log | grep nginx",
        "user@example.com",
        "std::vector<int> v(n, 0);",
    ),
    "list": (
        "apples, pears, plums, cherries",
        "Monday: gym; Tuesday: piano; Wednesday: swimming",
        "1. Preheat the oven. 2. Mix the dry ingredients. 3. Add the eggs.",
        "- milk - bread - eggs - coffee",
        "red, green, blue, cyan, magenta, yellow, black",
        "Pros: cheap, light. Cons: slow, noisy.",
        "Paris, London, Rome, Madrid, Berlin, Vienna",
        "Ingredients: flour; sugar; butter; salt",
    ),
    "non_ascii": (
        "Der Zug nach München fährt um acht Uhr ab.",
        "Le café est fermé le dimanche après-midi.",
        "El niño comió una manzana en el jardín.",
        "José and Zoë met Øyvind at the Ærø ferry.",
        "Приветствую вас на нашей конференции.",
        "東京は日本の首都です。",
        "Crème brûlée, jalapeño, façade, naïve",
        "Ελληνικά γράμματα: α, β, γ, δ",
        "Smörgåsbord in Göteborg",
        "The price is 50 € or £43, about ¥7,000.",
        "دمشق مدينة قديمة",
        "Çağlar İstanbul'da yaşıyor.",
    ),
    "repeated": (
        "buffalo buffalo buffalo buffalo buffalo",
        "no no no no no no",
        "very very very very very good",
        "la la la la la",
        "the the the the",
        "go go go!",
        "help help help help help help help help",
        "ha ha ha ha ha ha ha",
    ),
    "dialogue": (
        "lol that's hilarious, i can't stop laughing",
        "brb, gotta grab some coffee",
        "omg did u see the game last night??",
        "Honestly? I think we should just order pizza.",
        "hey, can u send me the file when u get a chance",
        "I told you so. Twice.",
        "idk, whatever works for you tbh",
        "Are we still on for Friday? Let me know!",
    ),
    "long": (_LONG_1, _LONG_2, _LONG_3, _LONG_4, _LONG_5),
}


def calibration_sentences() -> tuple[str, ...]:
    """Every sentence of :data:`CALIBRATION_CORPUS`, kind by kind (the order of the dict)."""
    return tuple(s for v in CALIBRATION_CORPUS.values() for s in v)


def calibration_split() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(fit, tune)``: of each kind, every third sentence (from the second) goes to ``tune``,
    the rest to ``fit``; the ``long`` kind (from 167 to over 256 tokens: the last one is truncated at
    the model's limit) gives one of its five to ``tune``."""
    fit: list[str] = []
    tune: list[str] = []
    for v in CALIBRATION_CORPUS.values():
        for i, s in enumerate(v):
            (tune if i % 3 == 1 else fit).append(s)
    return tuple(fit), tuple(tune)
