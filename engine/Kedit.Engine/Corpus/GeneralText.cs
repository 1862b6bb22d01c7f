namespace Kedit.Corpus;

/// <summary>
/// Simple everyday English for the fact world: a small grammar of people, animals, actions,
/// places and times, plus a few hand-written sentences. The training and held-out sentences are
/// disjoint draws from the same grammar, so held-out perplexity measures generalisation.
/// </summary>
public static class GeneralText
{
    static readonly string[] Subjects =
        ["The old man", "A young girl", "The little boy", "My neighbor", "The teacher", "A tired farmer", "The baker", "Her brother",
         "The doctor", "A quiet student", "The driver", "His sister", "The kind nurse", "A busy cook", "The small dog", "The black cat",
         "Our friend", "The tall woman", "The new worker", "A happy child"];
    static readonly string[] Actions =
        ["reads a book", "drinks some tea", "opens the window", "cleans the kitchen", "writes a letter", "buys fresh bread",
         "visits the market", "carries a basket", "paints the fence", "feeds the birds", "sings a song", "waits for the bus",
         "walks slowly", "takes a short nap", "plays with a ball", "cooks some soup", "waters the plants", "closes the door",
         "looks at the sky", "sits on a bench", "picks some apples", "washes the dishes", "listens to the radio", "fixes the old bike"];
    static readonly string[] Places =
        ["in the garden", "near the river", "at the station", "in the kitchen", "by the window", "on the hill", "at school",
         "in the park", "at home", "in the small town", "near the old bridge", "in the village"];
    static readonly string[] Times =
        ["every morning", "in the evening", "after lunch", "on Sundays", "before dinner", "at night", "in the summer",
         "every day", "in the winter", "on rainy days"];

    static readonly string[] Handwritten =
    [
        "The sun rises in the east and sets in the west.", "Water freezes when it is very cold.", "A week has seven days.",
        "Most birds can fly, but some cannot.", "Rain falls from the clouds.", "Trees grow slowly over many years.",
        "People sleep at night and work during the day.", "The moon shines at night.", "Fish live in water.",
        "Bread is made from flour and water.", "Children go to school to learn.", "A year has twelve months.",
        "Snow is white and cold.", "The sea is very large and deep.", "Bees make honey from flowers.",
        "Cows give milk.", "Many people drink coffee in the morning.", "Summer is usually warmer than winter.",
        "A good friend listens to you.", "Books can teach us many things.", "Doctors help people who are sick.",
        "The train leaves the station at noon.", "Music makes many people happy.", "Fruit and vegetables are good for you.",
        "The wind moves the leaves of the trees.", "Cats like to sleep in warm places.", "Dogs are loyal animals.",
        "Farmers grow food in their fields.", "Mountains are higher than hills.", "The library is a quiet place.",
    ];

    /// <summary>About 700 training and 200 held-out sentences, disjoint, drawn from <paramref name="seed"/>.</summary>
    public static (IReadOnlyList<string> Train, IReadOnlyList<string> HeldOut) Generate(int seed, int trainCount = 700, int heldOutCount = 200)
    {
        var rng = new Random(seed);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var all = new List<string>();
        while (all.Count < trainCount + heldOutCount)
        {
            string s = Subjects[rng.Next(Subjects.Length)] + " " + Actions[rng.Next(Actions.Length)];
            int shape = rng.Next(3);
            if (shape != 1) s += " " + Places[rng.Next(Places.Length)];
            if (shape != 2) s += " " + Times[rng.Next(Times.Length)];
            s += ".";
            if (seen.Add(s)) all.Add(s);
        }
        var train = all.Take(trainCount).Concat(Handwritten).ToList();
        return (train, all.Skip(trainCount).ToList());
    }
}
