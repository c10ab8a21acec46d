/** src/domain/csv.ts: RFC 4180 quoting, and no cell a spreadsheet would run as a formula. */
import { describe, expect, it } from "vitest";
import { csvCell, csvLine } from "../../src/domain/csv";

describe("csvCell", () => {
  it("leaves ordinary text, numbers and empty values alone", () => {
    expect(csvCell("plain")).toBe("plain");
    expect(csvCell("welcome credit")).toBe("welcome credit");
    expect(csvCell(42)).toBe("42");
    expect(csvCell(null)).toBe("");
    expect(csvCell(undefined)).toBe("");
    expect(csvCell("2026-11-29T10:00:00.000Z")).toBe("2026-11-29T10:00:00.000Z");
  });

  it("keeps plain numbers (signed amounts) as numbers", () => {
    for (const n of ["-12.5", "-0.055040", "-1.000000", "+3", "-7", "0.000001"]) expect(csvCell(n)).toBe(n);
    expect(csvCell(-12.5)).toBe("-12.5");
  });

  it("neutralises every formula start with a leading single quote", () => {
    expect(csvCell("=1+1")).toBe("'=1+1");
    expect(csvCell("+1+1")).toBe("'+1+1");
    expect(csvCell("-1+1")).toBe("'-1+1");
    expect(csvCell("@SUM(A1)")).toBe("'@SUM(A1)");
    expect(csvCell("\t=1+1")).toBe("'\t=1+1");
    expect(csvCell("-minus")).toBe("'-minus");
    expect(csvCell("-")).toBe("'-");
    expect(csvCell("-1e5")).toBe("'-1e5");
    expect(csvCell("=cmd|' /C calc'!A0")).toBe("'=cmd|' /C calc'!A0");
    // A carriage return also needs quoting.
    expect(csvCell("\r=1+1")).toBe(`"'\r=1+1"`);
  });

  it("quotes quotes, commas and line breaks, after neutralising", () => {
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell("a,b")).toBe('"a,b"');
    expect(csvCell("two\r\nlines")).toBe('"two\r\nlines"');
    expect(csvCell("line\nbreak")).toBe('"line\nbreak"');
    expect(csvCell('=HYPERLINK("http://evil.example/x","click")')).toBe(
      `"'=HYPERLINK(""http://evil.example/x"",""click"")"`,
    );
    expect(csvCell("=SUM(A1:A2),x")).toBe(`"'=SUM(A1:A2),x"`);
  });

  it("csvLine joins cells with commas", () => {
    expect(csvLine([1, "=x", null, "a,b", "-0.5"])).toBe(`1,'=x,,"a,b",-0.5`);
  });
});
