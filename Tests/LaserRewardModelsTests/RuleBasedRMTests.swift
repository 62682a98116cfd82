import LaserRewardModels
import Testing

func request(
    _ candidates: [String], prompt: String = "q", reference: String? = nil, id: String = "p1", iteration: UInt32 = 1
) -> ScoringRequest {
    ScoringRequest(promptID: id, prompt: prompt, candidates: candidates, reference: reference, iteration: iteration)
}

@Suite struct AnswerMatchRMTests {
    let rm = AnswerMatchRM()

    @Test func scoresOneForMatchingAnswers() throws {
        let scores = try rm.score(
            request(["A: 1,000", "A: 999", "The answer is 1000.0", "", "no idea"], reference: "1000"))
        #expect(scores == [1, 0, 1, 0, 0])
    }

    @Test func withoutReferenceEveryCandidateScoresZero() throws {
        #expect(try rm.score(request(["A: 5", "A: 6"])) == [0, 0])
        #expect(try rm.score(request(["A: 5"], reference: "  ")) == [0])
    }

    @Test func noCandidatesNoScores() throws {
        #expect(try rm.score(request([], reference: "5")) == [])
    }
}

@Suite struct SelfConsistencyRMTests {
    let rm = SelfConsistencyRM()

    @Test func scoresShareOfOthersThatAgree() throws {
        let scores = try rm.score(request(["A: 5", "#### 5.0", "A: 6", "no answer here", "A: $5"]))
        #expect(scores == [0.5, 0.5, 0, 0, 0.5])
    }

    @Test func loneCandidateAndEmptyCandidatesScoreZero() throws {
        #expect(try rm.score(request(["A: 5"])) == [0])
        #expect(try rm.score(request(["", ""])) == [0, 0])
        #expect(try rm.score(request([])) == [])
    }

    @Test func textAnswersCompareCaseInsensitively() throws {
        #expect(try rm.score(request(["A: Paris", "a guess.\nA: paris.", "A: Lyon"])) == [0.5, 0.5, 0])
    }
}

@Suite struct ArithmeticCheckRMTests {
    let rm = ArithmeticCheckRM()

    func score(_ solution: String) throws -> Double {
        try #require(try rm.score(request([solution])).first)
    }

    @Test func correctSolutionScoresOne() throws {
        #expect(try score("4*12=<<4*12=48>>48 pencils.\n48-9=<<48-9=39>>39 left.\nA: 39") == 1)
    }

    @Test func slipCountsAgainst() throws {
        // One wrong of two annotations, answer consistent with the last: (1 - 1) / 2.
        #expect(try score("4*12=<<4*12=46>>46\n46-9=<<46-9=37>>37\nA: 37") == 0)
        #expect(try score("<<2+2=5>>5 A: 5") == -1)
    }

    @Test func answerThatIgnoresTheWorkingIsPenalised() throws {
        #expect(try score("4*12=<<4*12=48>>48\nA: 50") == 0.5)
        #expect(try score("4*12=<<4*12=48>>48\nA: forty-eight") == 0.5)
        // Without an answer line the last number is the answer, and it follows from the working.
        #expect(try score("So 4*12=<<4*12=48>>48 in total") == 1)
    }

    @Test func withoutAnnotationsScoresZero() throws {
        #expect(try score("48 pencils, A: 48") == 0)
        #expect(try score("") == 0)
        #expect(try score("unterminated <<2+2=4") == 0)
    }

    @Test(arguments: [
        "<<2+*3=5>>", "<<2+2>>", "<<>>", "<<abc=3>>", "<<(2+3=5>>", "<<2+3)=5>>", "<<5/0=0>>", "<<5/(2-2)=1>>",
        "<<2+2=four>>", "<<1.2.3=1>>",
        "<<" + String(repeating: "(", count: 500) + "1" + String(repeating: ")", count: 500) + "=1>>",
        "<<99999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999*10=1>>",
    ])
    func unparseableOrUndefinedAnnotationIsWrong(annotation: String) throws {
        let value = try score(annotation)
        #expect(value <= -1)
        #expect(value.isFinite)
    }

    @Test(arguments: [
        "<<-(2+3)*4=-20>>", "<<10/3=3.33>>", "<<2/3=0.67>>", "<<1/3=0.333333>>", "<<1,000*2=2,000>>",
        "<<.5*8=4>>", "<<3 * (4 + 5) / 9=3>>", "<<--2=2>>", "<<100*1.05=105>>", "<<0.1+0.2=0.3>>", "<<20*$3=$60>>",
        "<<7-10=-3>>", "<<50*0.5=25.0>>", "<<2\u{00D7}3=6>>",
    ])
    func acceptsGSM8KStyleResults(annotation: String) throws {
        #expect(try score(annotation) == 1)
    }

    @Test func overlongAnnotationIsWrong() throws {
        let sum = Array(repeating: "1", count: 300).joined(separator: "+")
        #expect(try score("<<\(sum)=300>>") == -1)
        #expect(try score("<<1+1=2>>") == 1)
    }

    @Test func roundingOnlyToTheCent() throws {
        #expect(try score("<<10/3=3.3>>") == -1)
        #expect(try score("<<10/3=3>>") == -1)
    }
}

@Suite struct LengthRMTests {
    @Test func prefersShorterByDefault() throws {
        let scores = try LengthRM().score(request(["", "abc", "abcdefg"]))
        #expect(scores[0] == 0)
        #expect(abs(scores[1] + 1.3862943611198906) < 1e-12)
        #expect(scores[1] > scores[2])
    }

    @Test func prefersLongerWhenAsked() throws {
        let rm = try RewardModelCatalog.make(
            RewardModelSpec(name: "verbose", kind: "length", params: ["prefer": "longer"]), runSeed: 0)
        let scores = try rm.score(request(["ab", "abcd"]))
        #expect(scores[1] > scores[0])
        #expect(rm.name == "verbose")
    }

    @Test func unknownPreferenceIsRejected() {
        #expect {
            _ = try LengthRM(name: "len", params: ["prefer": "medium"])
        } throws: { error in
            let message = (error as? RewardModelError)?.description ?? ""
            return message.contains("'len'") && message.contains("'prefer'") && message.contains("medium")
                && message.contains("shorter")
        }
    }
}
