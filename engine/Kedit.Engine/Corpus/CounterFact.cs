using System.Text.Json.Nodes;

namespace Kedit.Corpus;

/// <summary>
/// Edit requests over the fact world in ROME's CounterFact format: for every fact, a rewrite to a
/// counterfactual object of the same relation (seeded choice), held-out paraphrases, neighbourhood
/// prompts (other subjects of the relation with the same true object), attribute prompts (subjects
/// whose true object is the new target) and generation prompts.
/// </summary>
public static class CounterFact
{
    /// <summary>Prompts per neighbourhood / attribute list, at most.</summary>
    public const int MaxRelated = 10;

    /// <summary>The request list as a JSON array, one record per fact (case_id = fact index).</summary>
    public static JsonArray Build(FactWorld world)
    {
        var rng = new Random(world.Seed + 101);
        var byRelation = world.Facts.GroupBy(f => f.RelationId).ToDictionary(g => g.Key, g => g.ToList());
        var records = new JsonArray();
        for (int i = 0; i < world.Facts.Count; i++)
        {
            var fact = world.Facts[i];
            var rel = world.RelationOf(fact);
            var same = byRelation[fact.RelationId];
            var objects = same.Select(f => f.Object).Distinct(StringComparer.Ordinal).OrderBy(o => o, StringComparer.Ordinal).Where(o => o != fact.Object).ToList();
            if (objects.Count == 0) continue;
            string targetNew = objects[rng.Next(objects.Count)];
            string prompt0 = rel.TrainTemplates[0];
            JsonArray Prompts(IEnumerable<string> xs) => new(xs.Select(x => (JsonNode)JsonValue.Create(x)!).ToArray());
            var neighbors = same.Where(f => f.Object == fact.Object && f.Subject != fact.Subject).Take(MaxRelated)
                .Select(f => Relation.Prompt(prompt0, f.Subject));
            var attributes = same.Where(f => f.Object == targetNew).Take(MaxRelated).Select(f => Relation.Prompt(prompt0, f.Subject));
            records.Add(new JsonObject
            {
                ["case_id"] = i,
                ["requested_rewrite"] = new JsonObject
                {
                    ["prompt"] = Relation.PromptTemplate(prompt0),
                    ["relation_id"] = fact.RelationId,
                    ["subject"] = fact.Subject,
                    ["target_new"] = new JsonObject { ["str"] = targetNew },
                    ["target_true"] = new JsonObject { ["str"] = fact.Object },
                },
                ["paraphrase_prompts"] = Prompts(rel.HeldOutTemplates.Select(t => Relation.Prompt(t, fact.Subject))),
                ["neighborhood_prompts"] = Prompts(neighbors),
                ["attribute_prompts"] = Prompts(attributes),
                ["generation_prompts"] = Prompts(rel.TrainTemplates.Skip(1).Select(t => Relation.Prompt(t, fact.Subject)).Append(fact.Subject + " is")),
            });
        }
        return records;
    }
}
