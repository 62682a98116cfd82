/// IFEval-style prompts: a short description task with 2-3 verifiable instructions, phrased the way
/// the instruction-following RM recognises them; candidates satisfy various subsets of them.
enum InstructionFamily {
    /// The verifiable instructions the demo states.
    enum Instruction: Equatable {
        case exactWords(Int)
        case atMostWords(Int)
        case atLeastWords(Int)
        case bullets(Int)
        case lowercase
        case uppercase
        case endWith(String)
        case include(String)
        case noCommas
        case quoted
    }

    struct Topic {
        var name: String
        var words: [String]
    }

    static let topics: [Topic] = [
        Topic(
            name: "autumn",
            words: [
                "leaves", "crisp", "golden", "harvest", "wind", "orchard", "amber", "cool",
                "mornings", "pumpkins", "fading", "light", "rustling", "maple",
            ]),
        Topic(
            name: "the ocean",
            words: [
                "waves", "salt", "tide", "horizon", "blue", "gulls", "foam", "deep",
                "currents", "shore", "endless", "spray", "shells",
            ]),
        Topic(
            name: "a city at night",
            words: [
                "neon", "streets", "traffic", "glowing", "windows", "quiet",
                "sirens", "towers", "rain", "lamps", "midnight", "taxis",
            ]),
        Topic(
            name: "coffee",
            words: [
                "bitter", "aroma", "steam", "roasted", "beans", "morning", "mug", "warm",
                "dark", "espresso", "crema", "ritual",
            ]),
        Topic(
            name: "mountains",
            words: [
                "peaks", "snow", "granite", "trails", "thin", "air", "summit", "pines",
                "valleys", "silent", "ridges", "eagles",
            ]),
        Topic(
            name: "a library",
            words: [
                "shelves", "pages", "silence", "dust", "stories", "readers", "lamps",
                "ink", "spines", "wisdom", "atlas", "whispers",
            ]),
        Topic(
            name: "winter",
            words: [
                "frost", "snow", "ice", "fireplace", "breath", "pale", "sky", "bare",
                "branches", "blankets", "cocoa", "sleds",
            ]),
        Topic(
            name: "a garden",
            words: [
                "roses", "soil", "bees", "blooms", "green", "petals", "sunlight", "weeds",
                "seeds", "gentle", "hedges", "tulips",
            ]),
        Topic(
            name: "the desert",
            words: [
                "dunes", "sand", "heat", "cactus", "mirage", "sun", "dry", "wind",
                "stars", "vast", "camels", "oasis",
            ]),
        Topic(
            name: "a thunderstorm",
            words: [
                "thunder", "lightning", "clouds", "rain", "rumbling", "dark", "flash",
                "gusts", "puddles", "electric", "storm", "shutters",
            ]),
    ]

    private static let numberWords = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
    ]

    static func sample(labels: [Bool], rng: inout DemoRandom) -> DemoSample {
        let topic = rng.pick(topics)
        let instructions = pickInstructions(topic: topic, rng: &rng)
        let prompt = phrase(topic: topic, instructions: instructions, rng: &rng)
        let candidates = labels.map { correct -> DemoCandidate in
            var satisfied = instructions
            if !correct {
                // Break one instruction mostly, sometimes more, as a policy that half-follows the prompt.
                let breaks = min(instructions.count, rng.chance(0.65) ? 1 : rng.int(in: 2...instructions.count))
                var order = instructions
                rng.shuffle(&order)
                satisfied.removeAll { order.prefix(breaks).contains($0) }
            }
            let text = respond(topic: topic, instructions: instructions, satisfied: satisfied, rng: &rng)
            return DemoCandidate(text: text, correct: correct)
        }
        return DemoSample(prompt: prompt, candidates: candidates, reference: nil)
    }

    private static func pickInstructions(topic: Topic, rng: inout DemoRandom) -> [Instruction] {
        var picked: [Instruction] = []
        let shape = rng.int(in: 0...3)
        switch shape {
        case 0: picked.append(.exactWords(rng.int(in: 6...14)))
        case 1: picked.append(.atMostWords(rng.int(in: 8...15)))
        case 2: picked.append(.atLeastWords(rng.int(in: 8...15)))
        default: picked.append(.bullets(rng.int(in: 2...5)))
        }
        var words = topic.words
        rng.shuffle(&words)
        var extras: [Instruction] = [
            rng.chance(0.6) ? .lowercase : .uppercase, .endWith(words[0]), .include(words[1]), .noCommas,
        ]
        // Quotes around a bulleted list would hide the first bullet's marker.
        if shape != 3 { extras.append(.quoted) }
        rng.shuffle(&extras)
        picked.append(contentsOf: extras.prefix(rng.chance(0.5) ? 1 : 2))
        return picked
    }

    // MARK: - Prompt

    private static func number(_ n: Int, _ rng: inout DemoRandom) -> String {
        n < numberWords.count && rng.chance(0.5) ? numberWords[n] : String(n)
    }

    private static func phrase(topic: Topic, instructions: [Instruction], rng: inout DemoRandom) -> String {
        var clauses: [String] = []
        var head = ""
        let asList = rng.chance(0.5)
        for instruction in instructions {
            switch instruction {
            case .exactWords(let n):
                head =
                    "\(rng.pick(["Describe", "Write about", "Sketch"])) \(topic.name) in exactly \(number(n, &rng)) words"
            case .atMostWords(let n):
                head =
                    "\(rng.pick(["Write a short note about", "Describe"])) \(topic.name) in at most \(number(n, &rng)) words"
            case .atLeastWords(let n):
                head =
                    "\(rng.pick(["Write a few lines about", "Describe"])) \(topic.name) in at least \(number(n, &rng)) words"
            case .bullets(let n):
                head = "\(rng.pick(["Describe", "Summarise"])) \(topic.name) as \(number(n, &rng)) bullet points"
            case .lowercase:
                clauses.append(
                    asList
                        ? rng.pick(["all in lowercase", "in all lowercase letters"])
                        : "Your entire response should be in lowercase.")
            case .uppercase:
                clauses.append(
                    asList
                        ? rng.pick(["all in capital letters", "in all uppercase letters"])
                        : "Your entire response should be in capital letters.")
            case .endWith(let word):
                clauses.append(
                    asList ? "end your response with the word '\(word)'" : "End your response with the word '\(word)'.")
            case .include(let word):
                clauses.append(asList ? "include the keyword '\(word)'" : "Include the keyword '\(word)'.")
            case .noCommas:
                clauses.append(asList ? "do not use any commas" : "Do not use any commas.")
            case .quoted:
                clauses.append(
                    asList
                        ? "wrap your entire response in double quotes"
                        : "Wrap your entire response in double quotes.")
            }
        }
        guard asList else { return head + ". " + clauses.joined(separator: " ") }
        if clauses.count == 1 { return head + ", and " + clauses[0] + "." }
        return head + ", " + clauses.dropLast().joined(separator: ", ") + ", and " + clauses.last! + "."
    }

    // MARK: - Response

    /// A response that satisfies exactly the instructions in `satisfied` (of those the prompt states).
    private static func respond(
        topic: Topic, instructions: [Instruction], satisfied: [Instruction], rng: inout DemoRandom
    ) -> String {
        func keeps(_ instruction: Instruction) -> Bool { satisfied.contains(instruction) }
        var reserved: [String] = []
        var endWord: String?
        var keyword: String?
        var lineCount: Int?
        var wordCount = rng.int(in: 6...14)
        var casing = rng.chance(0.5) ? Casing.sentence : .lower
        var commas = rng.chance(0.4)
        var quoted = false

        for instruction in instructions {
            let kept = keeps(instruction)
            switch instruction {
            case .exactWords(let n):
                wordCount = kept ? n : max(2, n + rng.pick([-3, -2, -1, 1, 2, 3]))
            case .atMostWords(let n):
                wordCount = kept ? max(3, n - rng.int(in: 0...3)) : n + rng.int(in: 1...4)
            case .atLeastWords(let n):
                wordCount = kept ? n + rng.int(in: 0...3) : max(2, n - rng.int(in: 1...4))
            case .bullets(let n):
                lineCount = kept ? n : (n == 1 || rng.chance(0.5) ? n + 1 : n - 1)
            case .lowercase:
                casing = kept ? .lower : .sentence
            case .uppercase:
                casing = kept ? .upper : .sentence
            case .endWith(let word):
                reserved.append(word)
                if kept { endWord = word }
            case .include(let word):
                reserved.append(word)
                if kept { keyword = word }
            case .noCommas:
                commas = !kept
            case .quoted:
                quoted = kept
            }
        }

        let pool = topic.words.filter { !reserved.contains($0) }
        if let lines = lineCount {
            wordCount = (0..<lines).reduce(0) { total, _ in total + rng.int(in: 2...4) }
        }
        var words: [String] = []
        while words.count < wordCount {
            let word = rng.pick(pool)
            if word != words.last { words.append(word) }
        }
        if let endWord { words[words.count - 1] = endWord }
        if let keyword {
            let slot = rng.int(in: 0...max(0, words.count - (endWord == nil ? 1 : 2)))
            words[slot] = keyword
        }
        if commas {
            let slots = max(1, words.count - 1)
            for _ in 0..<rng.int(in: 1...2) {
                let slot = rng.int(in: 0...(slots - 1))
                if !words[slot].hasSuffix(",") { words[slot] += "," }
            }
        }
        words = casing.apply(words)

        var text: String
        if let lines = lineCount {
            let marker = rng.pick(["- ", "* "])
            var rows: [String] = []
            var start = 0
            for row in 0..<lines {
                let remainingRows = lines - row
                let size =
                    row == lines - 1
                    ? words.count - start
                    : max(1, min(words.count - start - (remainingRows - 1), rng.int(in: 2...4)))
                rows.append(marker + words[start..<(start + size)].joined(separator: " "))
                start += size
            }
            text = rows.joined(separator: "\n")
        } else {
            text = words.joined(separator: " ") + (rng.chance(0.5) ? "." : "")
        }
        if quoted { text = "\"" + text + "\"" }
        return text
    }

    private enum Casing {
        case lower, upper, sentence

        func apply(_ words: [String]) -> [String] {
            switch self {
            case .lower: return words
            case .upper: return words.map { $0.uppercased() }
            case .sentence:
                guard let first = words.first else { return words }
                return [first.prefix(1).uppercased() + first.dropFirst()] + words.dropFirst()
            }
        }
    }
}
