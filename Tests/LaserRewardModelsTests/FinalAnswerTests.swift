import LaserRewardModels
import Testing

@Suite struct FinalAnswerTests {
    @Test(arguments: [
        ("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "72"),
        ("A: 6\n#### 5", "5"),
        ("So the total is 18.\nA: 18", "18"),
        ("The answer is 7. Answer: 8", "8"),
        ("I think the answer is Paris. It is in France.", "Paris"),
        ("Answer:\n  Canberra", "Canberra"),
        ("We get $\\boxed{\\frac{1}{2}}$ at the end", "\\frac{1}{2}"),
        ("There are 3 cats and 4 dogs.", "4"),
        ("It costs 1,000.50 dollars in total.", "1,000.50"),
        ("The temperature fell to -5 degrees.", "-5"),
        ("Compute 10-3 and stop", "3"),
        ("The answer is H. G. Wells. He wrote it.", "H. G. Wells"),
        ("The answer is Washington D.C. for sure", "Washington D.C. for sure"),
        ("A: 3.5. Done", "3.5"),
    ])
    func extractsFinalAnswer(text: String, expected: String) {
        #expect(FinalAnswer.extract(from: text) == expected)
    }

    @Test func textWithoutAnswerHasNone() {
        #expect(FinalAnswer.extract(from: "no digits and no markers here") == nil)
        #expect(FinalAnswer.extract(from: "") == nil)
        #expect(FinalAnswer.key(of: "   ") == nil)
    }

    @Test func aColonIsAMarkerOnlyAsAWord() {
        // "DATA:" ends in "A:" but is not an answer marker, so the last number wins.
        #expect(FinalAnswer.extract(from: "DATA: alpha then 12") == "12")
        #expect(FinalAnswer.extract(from: "notes\nA: Ottawa") == "Ottawa")
    }

    @Test(arguments: [
        ("1,000", "1000"), ("1000.0", "1000"), ("$1,000.00", "1000"), ("$18", "18"), ("18 apples", "18"),
        ("50%", "50"), ("\u{2212}3", "-3"), ("-$4", "-4"), ("0.50", "0.5"), ("3/4", "0.75"), ("72.", "72"),
        ("\\boxed{42}", "42"), ("**17**", "17"),
        ("Paris.", "paris"), ("  The  Great Gatsby! ", "the great gatsby"), ("\"Au\"", "au"),
    ])
    func normalizes(answer: String, expected: String) {
        #expect(FinalAnswer.normalize(answer) == expected)
    }

    @Test func numbersFollowedByTextAreText() {
        #expect(FinalAnswer.normalize("3 little pigs went home") == "3 little pigs went home")
        #expect(FinalAnswer.normalize("...") == nil)
    }

    @Test func matchesAgainstReference() {
        #expect(FinalAnswer.matches("She earns 500*2=<<500*2=1000>>1000.\nA: $1,000.00", reference: "1000"))
        #expect(FinalAnswer.matches("The answer is 18 dollars.", reference: "$18"))
        #expect(FinalAnswer.matches("A: canberra", reference: "Canberra"))
        #expect(FinalAnswer.matches("A: 72", reference: "Natalia sold 72 clips.\n#### 72"))
        #expect(!FinalAnswer.matches("A: Sydney", reference: "Canberra"))
        #expect(!FinalAnswer.matches("A: 1001", reference: "1,000"))
        #expect(!FinalAnswer.matches("no answer at all", reference: "Canberra"))
        #expect(!FinalAnswer.matches("A: 5", reference: "   "))
    }

    @Test func referenceWithoutMarkerIsItsWholeText() {
        #expect(FinalAnswer.referenceKey("Miguel de Cervantes") == "miguel de cervantes")
        #expect(FinalAnswer.referenceKey("Route 66") == "route 66")
        #expect(FinalAnswer.key(of: "Route 66") == "66")
    }
}
