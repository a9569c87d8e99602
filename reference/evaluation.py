"""The evaluation set of the integer MiniLM: varied text by kind, disjoint from calibration.

``EVALUATION`` maps each of 11 kinds to sentences written for this purpose: plain prose,
questions, very short replies, punctuation-only input, numbers, code and markup, lists,
non-ASCII text, repeated words, chat-style dialogue and long inputs (over 64 tokens; two exceed
the model's 256-token limit and are truncated). None of them is in the calibration corpus
(``intsim.models.minilm.corpus``) or in :mod:`reference.sentences`; a test checks both.

>>> sum(len(v) for v in EVALUATION.values()) >= 100, len(EVALUATION) >= 8
(True, True)
>>> evaluation_sentences()[0]
'The ferry crossed the bay slowly under a grey sky.'
"""

from __future__ import annotations

__all__ = ["EVALUATION", "evaluation_sentences", "evaluation_kinds"]

_LONG = (
    "Our library opened a repair café last spring. Every second Saturday, volunteers with "
    "screwdrivers, soldering irons and sewing machines sit at long tables, and neighbours bring "
    "toasters, lamps, jeans with torn pockets and bicycles with squeaking brakes. Nothing is "
    "charged; people learn to fix the thing themselves while a volunteer explains what went wrong. "
    "In the first year, more than six hundred objects were repaired, and the most common fault was "
    "a loose cable.",
    "The experiment compared two watering schedules for lettuce grown in greenhouse trays. Group A "
    "was watered once a day in the morning; group B received the same total volume in three smaller "
    "doses. After five weeks, the plants of group B were on average 14 percent heavier, had fewer "
    "yellow leaves and showed no root rot, while four trays of group A had to be discarded. The "
    "authors recommend repeating the trial in summer, when evaporation is much higher.",
    "Dear Ms Okafor, thank you for your letter of 3 May concerning the delayed delivery of your "
    "kitchen cabinets. I am sorry for the inconvenience. Our supplier has confirmed that the "
    "missing doors will arrive at our warehouse on Thursday, and our fitters can install them on "
    "Monday or Tuesday of next week, whichever suits you better. As a gesture of goodwill we will "
    "refund the delivery charge. Please call me directly if anything else is not as you expected.",
    "Installation notes: unpack the archive into an empty folder, open a terminal there and run the "
    "setup script with administrator rights. The script checks the operating system version, "
    "installs the missing libraries, creates a configuration file in your home directory and "
    "starts the service on port 8080. If the port is taken, edit the configuration file, choose "
    "another port between 1024 and 65535, and restart the service. Logs are written to the logs "
    "subfolder and rotated every night.",
    "The story begins on a train crossing the plains at night. A young doctor, on her way to her "
    "first post in a mining town, shares a compartment with an old man who claims to have built "
    "the railway. Over the long hours he tells her about the winter the tracks froze, the strike "
    "that stopped the line for a month and the engineer who drove through a blizzard to bring "
    "medicine to the camp. By dawn she realises that the doctor in his stories was her grandfather, "
    "and that the old man had known all along who she was.",
    "import json\n\nwith open(\"settings.json\") as f:\n    cfg = json.load(f)\n\nfor key, value in "
    "sorted(cfg.items()):\n    if isinstance(value, dict):\n        for sub, v in value.items():\n"
    "            print(f\"{key}.{sub} = {v}\")\n    else:\n        print(f\"{key} = {value}\")\n",
    # over 256 tokens: truncated by the model's limit
    "Quarterly report, operations. Shipments rose to 48,310 parcels, 9 percent more than in the "
    "previous quarter, while the share delivered on the first attempt improved from 91.2 to 93.8 "
    "percent. The new sorting line in the northern depot reached its design throughput of 6,000 "
    "parcels per hour in the second month, although two stoppages, caused by a faulty sensor and "
    "by a software update, cost about eleven hours of operation in total. Fuel costs fell by 4 "
    "percent thanks to the route planning tool, but maintenance costs rose because eight of the "
    "older vans needed new clutches. Staff turnover stayed low at 3 percent; sick leave rose "
    "slightly during the flu season in January. Customer complaints dropped by a fifth, most of the "
    "remaining ones concerning parcels left with neighbours without a note. For the next quarter "
    "we plan to extend the evening delivery window to 21:00 in the three largest cities, to replace "
    "ten more vans with electric models and to train all drivers on the updated handheld scanners. "
    "The budget request for the depot roof will be presented at the board meeting in June, together "
    "with the results of the pilot project on parcel lockers at railway stations, which so far has "
    "handled 2,140 parcels with a pick-up rate of 97 percent within 48 hours. Risks for the coming "
    "months include the planned road works on the ring motorway, a possible strike at the port and "
    "the renewal of the insurance contract, whose premium is expected to rise by at least 8 percent.",
    "words " * 300,
)

#: Kind -> sentences (written for intsim's evaluation; disjoint from calibration and reference.sentences).
EVALUATION: dict[str, tuple[str, ...]] = {
    "prose": (
        "The ferry crossed the bay slowly under a grey sky.",
        "Children built a snowman with a carrot nose in the schoolyard.",
        "The bakery on the corner sells out of rye bread by nine.",
        "A sudden gust blew the umbrella inside out.",
        "The violinist tuned her instrument while the audience settled.",
        "Heavy rain flooded the underpass, and traffic was diverted for hours.",
        "The new policy lets employees work from home two days a week.",
        "He painted the fence white and the gate dark green.",
        "The archaeologists found coins from three different centuries in one pit.",
        "Our cat refuses to eat anything except one brand of fish.",
        "The city council voted to extend the tram line to the hospital.",
        "Bees were swarming around the lavender by the garden wall.",
        "The startup raised money to build cheaper solar panels.",
        "After the marathon, she slept for eleven hours.",
        "The river froze solid for the first time in twenty years.",
    ),
    "question": (
        "How do I stop my glasses from fogging up in winter?",
        "What time does the post office close on Saturdays?",
        "Can dogs eat grapes?",
        "Is there a quicker way to get to the stadium from here?",
        "Why is the sky red at sunset?",
        "Who is responsible for fixing the street lights?",
        "What's the difference between baking soda and baking powder?",
        "Could you repeat the last part, please?",
        "When does the next bus to the university leave?",
        "How many languages are spoken in India?",
        "Do I need a visa to visit Canada for a week?",
        "Which is heavier, a kilogram of feathers or a kilogram of steel?",
    ),
    "short": (
        "Absolutely not.",
        "Many thanks!",
        "Yes.",
        "No.",
        "Okay.",
        "Hi!",
        "Bye for now.",
        "Sorry!",
        "Really?",
        "Done.",
        "Me too.",
        "Good night.",
        "Help!",
        "Perfect.",
        "Not today.",
    ),
    "punctuation": (
        "?",
        "!!",
        "?!?!",
        ".....",
        "---",
        "***",
        "()",
        "\"\"",
        "; ; ;",
        "!?",
    ),
    "numbers": (
        "The meeting moved from 14:00 to 15:30 on 12 June.",
        "Order #58213 shipped on 2023-11-02 and weighs 2.4 kg.",
        "Add 2 cups of water to 1 cup of rice.",
        "The bill came to 73.85, plus a 10% tip.",
        "Apartment 4C, 221 Pine Street",
        "Speed limit: 50 km/h, 30 km/h near schools.",
        "2 + 2 = 4",
        "The marathon distance is 42.195 kilometres.",
        "Version 3.11.4 fixes 27 bugs.",
        "1000000",
        "Only 7 of the 120 tickets are left.",
        "In 1969, 600 million people watched the landing.",
    ),
    "code": (
        "while True: pass",
        "UPDATE users SET active = 0 WHERE last_login < '2020-01-01';",
        "npm install --save-dev typescript",
        "return a if a > b else b",
        "#include <stdio.h>",
        "docker run -p 8080:80 nginx:latest",
        "print(\"hello, world\")",
        "df.groupby('city')['sales'].sum().sort_values()",
        "fn main() { println!(\"{}\", 1 + 2); }",
        "ssh admin@10.0.0.12 -p 2222",
        "<p>Click <b>here</b> to continue.</p>",
        "a[i] = a[i - 1] + a[i - 2];",
    ),
    "list": (
        "eggs, butter, flour, sugar, vanilla",
        "North, South, East, West",
        "Step 1: unplug it. Step 2: wait. Step 3: plug it back in.",
        "* tent * sleeping bag * torch * map",
        "Mon, Tue, Wed, Thu, Fri",
        "violin, viola, cello, double bass",
        "To do: call mum; pay rent; book dentist",
        "lions, tigers, bears",
    ),
    "non_ascii": (
        "Wir treffen uns morgen früh am Bahnhof.",
        "L'hôtel se trouve près de la gare.",
        "¿Dónde está la biblioteca?",
        "François, Søren and Łukasz play in the same band.",
        "Москва — столица России.",
        "今日はとても暑いです。",
        "piñata, résumé, café, über",
        "Ο καιρός είναι καλός σήμερα.",
        "Björk sang in Reykjavík.",
        "こんにちは、元気ですか？",
    ),
    "repeated": (
        "yes yes yes yes yes",
        "stop stop stop",
        "really really really really",
        "ok ok ok ok ok ok ok ok",
        "one one one one one one one one one one",
        "blah blah blah",
    ),
    "dialogue": (
        "haha no way, that's amazing",
        "can't make it tonight, sorry :(",
        "wait what?? since when",
        "lmk when ur home",
        "I mean... sure, if you really want to.",
        "ugh, monday again",
        "thx, that helped a lot!",
        "wanna grab lunch later?",
    ),
    "long": _LONG,
}


def evaluation_sentences() -> tuple[str, ...]:
    """Every sentence of :data:`EVALUATION`, kind by kind."""
    return tuple(s for v in EVALUATION.values() for s in v)


def evaluation_kinds() -> tuple[str, ...]:
    """The kind of each sentence of :func:`evaluation_sentences`, in the same order."""
    return tuple(k for k, v in EVALUATION.items() for _ in v)
