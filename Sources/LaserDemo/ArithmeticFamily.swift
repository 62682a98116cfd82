import Foundation

/// GSM8K-style word problems solved in two or three annotated steps, with the kinds of errors a
/// policy makes: calculator slips, wrong operations and final answers that ignore the working.
enum ArithmeticFamily {
    /// One calculation of a solution: `lhs op rhs`, where operands are given numbers or earlier results.
    struct Step {
        enum Operand {
            case given(Int)
            case step(Int)
        }

        var lhs: Operand
        var op: Character
        var rhs: Operand
        /// The plausible reasoning error at this step (e.g. adding where the problem multiplies).
        var mistake: Character
        /// Sentences around the calculation, which replaces "{calc}"; one is picked per candidate.
        var phrasings: [String]
    }

    struct Problem {
        var question: String
        var steps: [Step]
    }

    private enum Error {
        case none
        case slip(step: Int, delta: Int)
        case wrongOperation(step: Int)
        case unsupportedAnswer(delta: Int)
    }

    static func sample(labels: [Bool], rng: inout DemoRandom) -> DemoSample {
        let problem = rng.pick(templates)(&rng)
        // Policies repeat their mistakes: most wrong candidates of a prompt share one slip (a
        // "popular" wrong answer that outvotes the right one) or one wrong operation.
        let lastStep = problem.steps.count - 1
        let popularSlip = Error.slip(step: rng.int(in: 0...lastStep), delta: slipDelta(&rng))
        let popularMistake = Error.wrongOperation(step: rng.int(in: 0...lastStep))
        let candidates = labels.map { correct -> DemoCandidate in
            let error: Error
            if correct {
                error = .none
            } else {
                let draw = rng.unit()
                error =
                    draw < 0.5
                    ? popularSlip
                    : draw < 0.7
                        ? .slip(step: rng.int(in: 0...lastStep), delta: slipDelta(&rng))
                        : draw < 0.85
                            ? popularMistake
                            : .unsupportedAnswer(delta: slipDelta(&rng))
            }
            return DemoCandidate(text: solve(problem, with: error, rng: &rng), correct: correct)
        }
        return DemoSample(prompt: problem.question, candidates: candidates, reference: nil)
    }

    private static func slipDelta(_ rng: inout DemoRandom) -> Int {
        rng.pick([1, 2, 3, 4, 5, 6, 8, 9, 10, 20]) * (rng.chance(0.5) ? 1 : -1)
    }

    private static let openings = ["", "Let's work through it.\n", "We go step by step.\n", "First the totals.\n"]

    private static func solve(_ problem: Problem, with error: Error, rng: inout DemoRandom) -> String {
        var results: [Double] = []
        var lines: [String] = []
        for (index, step) in problem.steps.enumerated() {
            let a = value(step.lhs, results)
            let b = value(step.rhs, results)
            var op = step.op
            if case .wrongOperation(let wrong) = error, wrong == index { op = step.mistake }
            var result = apply(op, a, b)
            if case .slip(let slipped, let delta) = error, slipped == index {
                // A slip never turns a result negative: a policy's slips look like plausible numbers.
                result = result + Double(delta) > 0 ? result + Double(delta) : result + Double(abs(delta))
            }
            let shown = format(result)
            let calc = "\(format(a))\(op)\(format(b))=<<\(format(a))\(op)\(format(b))=\(shown)>>\(shown)"
            lines.append(rng.pick(step.phrasings).replacingOccurrences(of: "{calc}", with: calc))
            // Later steps continue from the number as written, as a solver reading its own work would.
            results.append(Double(shown) ?? result)
        }
        var answer = results.last ?? 0
        if case .unsupportedAnswer(let delta) = error {
            answer = answer + Double(delta) > 0 ? answer + Double(delta) : answer + Double(abs(delta))
        }
        return rng.pick(openings) + lines.joined(separator: "\n") + "\nA: \(format(answer))"
    }

    private static func value(_ operand: Step.Operand, _ results: [Double]) -> Double {
        switch operand {
        case .given(let n): return Double(n)
        case .step(let index): return results[index]
        }
    }

    private static func apply(_ op: Character, _ a: Double, _ b: Double) -> Double {
        switch op {
        case "+": return a + b
        case "-": return a - b
        case "*": return a * b
        case "/": return b == 0 ? a : a / b
        default: preconditionFailure("unknown operation \(op)")
        }
    }

    /// Integers without decimals; anything else rounded to cents, as GSM8K writes it.
    static func format(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        if rounded == rounded.rounded(), abs(rounded) < 1e15 { return String(Int64(rounded)) }
        var text = String(format: "%.2f", rounded)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }

    // MARK: - Templates

    private static let people: [(name: String, pronoun: String)] = [
        ("Maria", "she"), ("Tom", "he"), ("Aisha", "she"), ("Kenji", "he"), ("Lucia", "she"),
        ("Omar", "he"), ("Priya", "she"), ("Ben", "he"), ("Sofia", "she"), ("Dmitri", "he"),
    ]

    private static let templates: [@Sendable (inout DemoRandom) -> Problem] = [
        pencils, bakery, wages, orchard, train, reading, markers, savings,
    ]

    private static func pencils(_ rng: inout DemoRandom) -> Problem {
        let person = rng.pick(people)
        let boxes = rng.int(in: 3...9), perBox = rng.int(in: 6...24)
        let given = rng.int(in: 2...(boxes * perBox - 1))
        return Problem(
            question: "\(person.name) buys \(boxes) boxes of pencils. Each box holds \(perBox) pencils. "
                + "\(person.pronoun.capitalized) gives \(given) pencils to classmates. "
                + "How many pencils does \(person.name) have left?",
            steps: [
                Step(
                    lhs: .given(boxes), op: "*", rhs: .given(perBox), mistake: "+",
                    phrasings: [
                        "The boxes hold {calc} pencils.", "\(person.name) starts with {calc} pencils in total.",
                    ]),
                Step(
                    lhs: .step(0), op: "-", rhs: .given(given), mistake: "+",
                    phrasings: [
                        "After giving some away \(person.pronoun) has {calc} pencils.", "That leaves {calc} pencils.",
                    ]),
            ])
    }

    private static func bakery(_ rng: inout DemoRandom) -> Problem {
        let trays = rng.int(in: 3...8), perTray = rng.int(in: 6...12), price = rng.int(in: 2...5)
        return Problem(
            question: "A bakery bakes \(trays) trays of muffins with \(perTray) muffins on each tray. "
                + "Each muffin sells for $\(price). How many dollars does the bakery earn if it sells every muffin?",
            steps: [
                Step(
                    lhs: .given(trays), op: "*", rhs: .given(perTray), mistake: "+",
                    phrasings: ["The bakery makes {calc} muffins.", "There are {calc} muffins in all."]),
                Step(
                    lhs: .step(0), op: "*", rhs: .given(price), mistake: "+",
                    phrasings: ["Selling them earns {calc} dollars.", "The muffins bring in {calc} dollars."]),
            ])
    }

    private static func wages(_ rng: inout DemoRandom) -> Problem {
        let person = rng.pick(people)
        let rate = rng.int(in: 8...20), hours = rng.int(in: 5...20), weeks = rng.int(in: 2...6)
        let bike = rng.int(in: 20...(rate * hours * weeks - 10))
        return Problem(
            question: "\(person.name) earns $\(rate) per hour and works \(hours) hours a week. "
                + "After \(weeks) weeks \(person.pronoun) spends $\(bike) on a bike. How much money is left?",
            steps: [
                Step(
                    lhs: .given(rate), op: "*", rhs: .given(hours), mistake: "+",
                    phrasings: ["Each week pays {calc} dollars.", "\(person.name) makes {calc} dollars a week."]),
                Step(
                    lhs: .step(0), op: "*", rhs: .given(weeks), mistake: "+",
                    phrasings: [
                        "Over the weeks that is {calc} dollars.", "In total \(person.pronoun) earns {calc} dollars.",
                    ]),
                Step(
                    lhs: .step(1), op: "-", rhs: .given(bike), mistake: "+",
                    phrasings: ["After the bike {calc} dollars are left.", "The bike leaves {calc} dollars."]),
            ])
    }

    private static func orchard(_ rng: inout DemoRandom) -> Problem {
        let rows = rng.int(in: 3...9), perRow = rng.int(in: 4...12)
        let bag = rng.pick([4, 5, 6, 8, 10])
        let apples = bag * rng.int(in: 2...6)
        return Problem(
            question: "An orchard has \(rows) rows of apple trees with \(perRow) trees in each row. "
                + "Each tree gives \(apples) apples. The farmer packs the apples in bags of \(bag). "
                + "How many bags can the farmer fill?",
            steps: [
                Step(
                    lhs: .given(rows), op: "*", rhs: .given(perRow), mistake: "+",
                    phrasings: ["The orchard has {calc} trees.", "There are {calc} trees."]),
                Step(
                    lhs: .step(0), op: "*", rhs: .given(apples), mistake: "+",
                    phrasings: ["They give {calc} apples.", "The harvest is {calc} apples."]),
                Step(
                    lhs: .step(1), op: "/", rhs: .given(bag), mistake: "*",
                    phrasings: ["Packed in bags that fills {calc} bags.", "So the farmer fills {calc} bags."]),
            ])
    }

    private static func train(_ rng: inout DemoRandom) -> Problem {
        let speed1 = rng.int(in: 30...80), hours1 = rng.int(in: 2...5)
        let speed2 = rng.int(in: 20...70), hours2 = rng.int(in: 1...4)
        return Problem(
            question: "A train travels at \(speed1) miles per hour for \(hours1) hours and then at \(speed2) "
                + "miles per hour for \(hours2) hours. How many miles does the train travel in total?",
            steps: [
                Step(
                    lhs: .given(speed1), op: "*", rhs: .given(hours1), mistake: "+",
                    phrasings: ["The first part covers {calc} miles.", "First it goes {calc} miles."]),
                Step(
                    lhs: .given(speed2), op: "*", rhs: .given(hours2), mistake: "+",
                    phrasings: ["The second part covers {calc} miles.", "Then it goes {calc} miles."]),
                Step(
                    lhs: .step(0), op: "+", rhs: .step(1), mistake: "-",
                    phrasings: ["Together that is {calc} miles.", "The whole trip is {calc} miles."]),
            ])
    }

    private static func reading(_ rng: inout DemoRandom) -> Problem {
        let person = rng.pick(people)
        let perDay = rng.int(in: 10...40), days = rng.int(in: 3...12)
        let total = perDay * days + rng.int(in: 20...200)
        return Problem(
            question: "\(person.name) reads \(perDay) pages every day for \(days) days. The book has \(total) pages. "
                + "How many pages are left to read?",
            steps: [
                Step(
                    lhs: .given(perDay), op: "*", rhs: .given(days), mistake: "+",
                    phrasings: ["\(person.name) has read {calc} pages.", "So far that is {calc} pages."]),
                Step(
                    lhs: .given(total), op: "-", rhs: .step(0), mistake: "+",
                    phrasings: ["That leaves {calc} pages.", "There are {calc} pages still to read."]),
            ])
    }

    private static func markers(_ rng: inout DemoRandom) -> Problem {
        let packs = rng.int(in: 4...12), perPack = rng.int(in: 6...12), rooms = rng.int(in: 2...6)
        let total = packs * perPack
        let broken = rooms * rng.int(in: 1...3) + total % rooms
        return Problem(
            question: "A school orders \(packs) packs of markers with \(perPack) markers in each pack. "
                + "\(broken) markers are broken. The rest are shared equally among \(rooms) classrooms. "
                + "How many markers does each classroom get?",
            steps: [
                Step(
                    lhs: .given(packs), op: "*", rhs: .given(perPack), mistake: "+",
                    phrasings: ["The school gets {calc} markers.", "The order has {calc} markers."]),
                Step(
                    lhs: .step(0), op: "-", rhs: .given(broken), mistake: "+",
                    phrasings: ["Without the broken ones {calc} markers work.", "That leaves {calc} good markers."]),
                Step(
                    lhs: .step(1), op: "/", rhs: .given(rooms), mistake: "*",
                    phrasings: ["Each classroom gets {calc} markers.", "Shared out that is {calc} markers each."]),
            ])
    }

    private static func savings(_ rng: inout DemoRandom) -> Problem {
        let person = rng.pick(people)
        let weekly = rng.int(in: 5...25), weeks = rng.int(in: 4...12), gift = rng.int(in: 10...60)
        let game = rng.int(in: 15...(weekly * weeks))
        return Problem(
            question: "\(person.name) saves $\(weekly) each week for \(weeks) weeks and then receives $\(gift) "
                + "as a gift. \(person.pronoun.capitalized) buys a game for $\(game). "
                + "How much money does \(person.name) have now?",
            steps: [
                Step(
                    lhs: .given(weekly), op: "*", rhs: .given(weeks), mistake: "+",
                    phrasings: ["Saving gives {calc} dollars.", "\(person.name) saves {calc} dollars."]),
                Step(
                    lhs: .step(0), op: "+", rhs: .given(gift), mistake: "-",
                    phrasings: ["With the gift that is {calc} dollars.", "The gift brings it to {calc} dollars."]),
                Step(
                    lhs: .step(1), op: "-", rhs: .given(game), mistake: "+",
                    phrasings: ["After the game {calc} dollars are left.", "The game leaves {calc} dollars."]),
            ])
    }
}
