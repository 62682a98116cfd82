import LaserRewardModels
import Testing

@Suite struct InstructionFollowingRMTests {
    let rm = InstructionFollowingRM()

    func score(_ prompt: String, _ candidates: [String]) throws -> [Double] {
        try rm.score(request(candidates, prompt: prompt))
    }

    @Test func scoresFractionOfInstructionsSatisfied() throws {
        let prompt =
            "Describe autumn in exactly 8 words, all in lowercase, and end your response with the word 'leaves'."
        let scores = try score(
            prompt,
            [
                "crisp golden mornings bring rustling red maple leaves.",  // 8 words, lowercase, ends with leaves
                "Crisp golden mornings bring rustling red maple leaves",  // capital C
                "crisp golden mornings bring rustling red maple trees",  // wrong last word
                "crisp mornings bring leaves",  // 4 words
                "CRISP GOLDEN MORNINGS",  // satisfies nothing
            ])
        #expect(scores.count == 5)
        #expect(scores[0] == 1)
        #expect(abs(scores[1] - 2.0 / 3) < 1e-12)
        #expect(abs(scores[2] - 2.0 / 3) < 1e-12)
        #expect(abs(scores[3] - 2.0 / 3) < 1e-12)
        #expect(scores[4] == 0)
    }

    @Test func promptWithoutInstructionsGivesNoInformation() throws {
        #expect(try score("What is the capital of Australia?", ["A: Canberra", "Sydney"]) == [0, 0])
        #expect(try score("A train travels at 60 miles per hour for 3 hours.", ["A: 180"]) == [0])
    }

    @Test func emptyCandidateFollowsNothing() throws {
        #expect(try score("Do not use any commas.", ["", "  ", "fine"]) == [0, 0, 1])
    }

    @Test(arguments: [
        // (prompt, satisfying response, violating response)
        ("Answer in at most five words.", "one two three four five", "one two three four five six"),
        ("Answer in AT LEAST 3 words.", "one two three", "one two"),
        ("Use no more than twenty words.", "short", String(repeating: "w ", count: 21)),
        ("Write fewer than 4 words.", "a b c", "a b c d"),
        ("Write more than 2 words.", "a b c", "a b"),
        ("Write 3 words or less.", "a b", "a b c d"),
        ("Reply all in lowercase.", "all small here", "Not small"),
        ("Reply in all lowercase letters.", "all small here", "Not small"),
        ("Your entire response should be in lowercase.", "ok", "OK"),
        ("Reply in capital letters.", "LOUD AND CLEAR", "Loud"),
        ("Write it all in uppercase.", "LOUD", "loud"),
        (
            "End your response with 'Is there anything else?'", "So. Is there anything else?",
            "Is there anything else? No."
        ),
        ("Finish your answer with the phrase \u{201C}peace out\u{201D}.", "that is all, Peace out!", "peace out now"),
        ("End with the word 'leaves'.", "falling \"leaves\".", "sleaves"),
        ("Include the keyword 'harvest'.", "The Harvest moon", "harvesting season"),
        ("Include the keywords 'salt' and 'tide'.", "salt and tide", "neither word"),
        ("Do not include the word 'very'.", "quite good", "very good"),
        ("Write it without commas.", "no commas here", "one, two"),
        ("Do not use any commas.", "fine", "a,b"),
        ("Summarise as three bullet points.", "- a\n- b\n  * c", "- a\n- b"),
        ("Give exactly 2 bullet points.", "* a\n* b\nnot a bullet", "* a\n* b\n* c"),
        ("Wrap your entire response in double quotes.", "\"quoted\"", "not \"quoted\""),
        ("Wrap your entire response with double quotation marks.", " \u{201C}quoted\u{201D} ", "\""),
    ])
    func recognisesInstruction(prompt: String, good: String, bad: String) throws {
        let scores = try score(prompt, [good, bad])
        #expect(scores == [1, 0], "\(prompt)")
    }

    @Test func numberWordsOneToTwenty() throws {
        let words = [
            "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
            "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
        ]
        for (index, word) in words.enumerated() {
            let n = index + 1
            let exact = Array(repeating: "w", count: n).joined(separator: " ")
            let scores = try score("Write exactly \(word) words.", [exact, exact + " w"])
            #expect(scores == [1, 0], "\(word)")
        }
    }

    @Test func bulletMarkersAreNotWords() throws {
        let scores = try score(
            "Describe the sea as 2 bullet points in exactly 4 words.",
            ["- blue waves\n- salt spray", "- blue\n- salt spray"])
        #expect(scores == [1, 0.5])
    }
}
