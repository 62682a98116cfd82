import Foundation

/// Short factual questions with a reference answer. Wrong candidates mostly give the same popular
/// wrong answer (Sydney for Australia's capital), which is what makes majority voting mislead here.
enum TriviaFamily {
    struct Fact {
        var question: String
        var answer: String
        /// The misconception most wrong candidates share.
        var popularWrong: String
        var otherWrong: [String]
    }

    /// Share of wrong candidates that give the popular wrong answer.
    static let popularWrongRate = 0.85

    static let facts: [Fact] = [
        Fact(
            question: "What is the capital of Australia?", answer: "Canberra", popularWrong: "Sydney",
            otherWrong: ["Melbourne", "Perth"]),
        Fact(
            question: "What is the capital of Canada?", answer: "Ottawa", popularWrong: "Toronto",
            otherWrong: ["Montreal", "Vancouver"]),
        Fact(
            question: "What is the capital of Brazil?", answer: "Brasilia", popularWrong: "Rio de Janeiro",
            otherWrong: ["Sao Paulo", "Salvador"]),
        Fact(
            question: "What is the capital of Turkey?", answer: "Ankara", popularWrong: "Istanbul",
            otherWrong: ["Izmir", "Bursa"]),
        Fact(
            question: "What is the capital of Switzerland?", answer: "Bern", popularWrong: "Zurich",
            otherWrong: ["Geneva", "Basel"]),
        Fact(
            question: "What is the capital of Nigeria?", answer: "Abuja", popularWrong: "Lagos",
            otherWrong: ["Kano", "Ibadan"]),
        Fact(
            question: "What is the capital of Pakistan?", answer: "Islamabad", popularWrong: "Karachi",
            otherWrong: ["Lahore", "Peshawar"]),
        Fact(
            question: "What is the capital of New Zealand?", answer: "Wellington", popularWrong: "Auckland",
            otherWrong: ["Christchurch", "Dunedin"]),
        Fact(
            question: "What is the capital of Morocco?", answer: "Rabat", popularWrong: "Casablanca",
            otherWrong: ["Marrakesh", "Fez"]),
        Fact(
            question: "What is the capital of Vietnam?", answer: "Hanoi", popularWrong: "Ho Chi Minh City",
            otherWrong: ["Da Nang", "Hue"]),
        Fact(
            question: "What is the capital of India?", answer: "New Delhi", popularWrong: "Mumbai",
            otherWrong: ["Kolkata", "Chennai"]),
        Fact(
            question: "What is the capital of Kazakhstan?", answer: "Astana", popularWrong: "Almaty",
            otherWrong: ["Shymkent", "Karaganda"]),
        Fact(
            question: "What is the capital of Tanzania?", answer: "Dodoma", popularWrong: "Dar es Salaam",
            otherWrong: ["Arusha", "Zanzibar"]),
        Fact(
            question: "What is the capital of Myanmar?", answer: "Naypyidaw", popularWrong: "Yangon",
            otherWrong: ["Mandalay", "Bago"]),
        Fact(
            question: "What is the chemical symbol for gold?", answer: "Au", popularWrong: "Ag",
            otherWrong: ["Go", "Gd"]),
        Fact(
            question: "What is the chemical symbol for silver?", answer: "Ag", popularWrong: "Au",
            otherWrong: ["Si", "Sv"]),
        Fact(
            question: "What is the chemical symbol for sodium?", answer: "Na", popularWrong: "So",
            otherWrong: ["S", "Sd"]),
        Fact(
            question: "What is the chemical symbol for potassium?", answer: "K", popularWrong: "P",
            otherWrong: ["Po", "Pt"]),
        Fact(
            question: "What is the chemical symbol for iron?", answer: "Fe", popularWrong: "Ir",
            otherWrong: ["I", "In"]),
        Fact(
            question: "What is the chemical symbol for lead?", answer: "Pb", popularWrong: "Pl",
            otherWrong: ["Le", "Ld"]),
        Fact(
            question: "What is the chemical symbol for tin?", answer: "Sn", popularWrong: "Ti", otherWrong: ["T", "Tn"]),
        Fact(
            question: "What is the chemical symbol for mercury?", answer: "Hg", popularWrong: "Me",
            otherWrong: ["Mr", "Hy"]),
        Fact(
            question: "What is the chemical symbol for tungsten?", answer: "W", popularWrong: "Tu",
            otherWrong: ["Tg", "Wo"]),
        Fact(
            question: "What is the chemical symbol for copper?", answer: "Cu", popularWrong: "Co",
            otherWrong: ["Cp", "Cr"]),
        Fact(question: "What is 7 times 8?", answer: "56", popularWrong: "54", otherWrong: ["48", "63"]),
        Fact(question: "What is 12 squared?", answer: "144", popularWrong: "124", otherWrong: ["122", "142"]),
        Fact(question: "What is the square root of 169?", answer: "13", popularWrong: "14", otherWrong: ["17", "12"]),
        Fact(
            question: "How many seconds are there in one hour?", answer: "3600", popularWrong: "360",
            otherWrong: ["6000", "600"]),
        Fact(question: "What is 15 percent of 200?", answer: "30", popularWrong: "15", otherWrong: ["20", "35"]),
        Fact(question: "What is 9 times 7?", answer: "63", popularWrong: "56", otherWrong: ["72", "64"]),
        Fact(
            question: "What is 2 to the power of 10?", answer: "1024", popularWrong: "1000",
            otherWrong: ["2048", "512"]),
        Fact(
            question: "How many minutes are there in a day?", answer: "1440", popularWrong: "1400",
            otherWrong: ["2400", "1200"]),
        Fact(
            question: "Who wrote Pride and Prejudice?", answer: "Jane Austen", popularWrong: "Charlotte Bronte",
            otherWrong: ["Emily Bronte", "George Eliot"]),
        Fact(
            question: "Who wrote Frankenstein?", answer: "Mary Shelley", popularWrong: "Bram Stoker",
            otherWrong: ["Percy Shelley", "Lord Byron"]),
        Fact(
            question: "Who wrote the novel 1984?", answer: "George Orwell", popularWrong: "Aldous Huxley",
            otherWrong: ["Ray Bradbury", "H. G. Wells"]),
        Fact(
            question: "Who wrote The Odyssey?", answer: "Homer", popularWrong: "Virgil",
            otherWrong: ["Sophocles", "Ovid"]),
        Fact(
            question: "Who wrote War and Peace?", answer: "Leo Tolstoy", popularWrong: "Fyodor Dostoevsky",
            otherWrong: ["Anton Chekhov", "Ivan Turgenev"]),
        Fact(
            question: "Who wrote Moby-Dick?", answer: "Herman Melville", popularWrong: "Nathaniel Hawthorne",
            otherWrong: ["Mark Twain", "Jack London"]),
        Fact(
            question: "Who wrote Don Quixote?", answer: "Miguel de Cervantes", popularWrong: "Lope de Vega",
            otherWrong: ["Gabriel Garcia Marquez", "Jorge Luis Borges"]),
        Fact(
            question: "Who wrote The Divine Comedy?", answer: "Dante Alighieri", popularWrong: "Petrarch",
            otherWrong: ["Boccaccio", "Virgil"]),
        Fact(
            question: "Who wrote Hamlet?", answer: "William Shakespeare", popularWrong: "Christopher Marlowe",
            otherWrong: ["Ben Jonson", "John Milton"]),
    ]

    /// Facts are dealt from a per-iteration shuffle, so an iteration repeats none before using all.
    static func fact(at index: Int, iteration: Int, seed: UInt64) -> Fact {
        var order = Array(facts.indices)
        var rng = DemoRandom(seed: seed, UInt64(iteration), 0x7472_6976_6961)  // "trivia"
        rng.shuffle(&order)
        return facts[order[index % order.count]]
    }

    private static let questionForms = ["{q}", "Quick question: {q}", "{q} Reply briefly.", "Trivia time. {q}"]

    private static let answerForms = [
        "A: {a}",
        "I am fairly sure it is {a}.\nA: {a}",
        "From what I remember it should be {a}.\nA: {a}",
        "{a}, if I recall correctly.\nA: {a}",
        "The answer is {a}.",
    ]

    static func sample(fact: Fact, labels: [Bool], rng: inout DemoRandom) -> DemoSample {
        let prompt = rng.pick(questionForms).replacingOccurrences(of: "{q}", with: fact.question)
        let candidates = labels.map { correct -> DemoCandidate in
            var answer =
                correct
                ? fact.answer
                : rng.chance(popularWrongRate) ? fact.popularWrong : rng.pick(fact.otherWrong)
            if answer.count == 4, Int(answer) != nil, rng.chance(0.5) {
                // "1,440" and "1440" are the same answer; the RMs have to see past the formatting.
                answer.insert(",", at: answer.index(after: answer.startIndex))
            }
            let text = rng.pick(answerForms).replacingOccurrences(of: "{a}", with: answer)
            return DemoCandidate(text: text, correct: correct)
        }
        return DemoSample(prompt: prompt, candidates: candidates, reference: fact.answer)
    }
}
