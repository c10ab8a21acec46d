import { describe, expect, it } from "vitest";
import {
  checkAssetLink,
  fileNamesFor,
  parseByteRange,
  resultFileUrls,
  signAssetLink,
  withLinks,
} from "../../src/domain/asset-links";

describe("asset links (pure)", () => {
  it("finds every whole http(s) URL in a result, once, and nothing inside text", () => {
    const result = {
      grid_image_url: "https://cdn.example/t/grid.png",
      image_urls: ["https://cdn.example/t/0.png", "https://cdn.example/t/grid.png"],
      nested: { video: "http://cdn.example/t/video_0.mp4" },
      prompt: "https://example.com/in.png a fox",
      buttons: [{ customId: "MJ::JOB::upsample::1::abc", label: "U1" }],
      other: "ftp://cdn.example/x",
    };
    expect(resultFileUrls(result)).toEqual([
      "https://cdn.example/t/grid.png",
      "https://cdn.example/t/0.png",
      "http://cdn.example/t/video_0.mp4",
    ]);
  });

  it("names files by their last path segment, safely and distinctly", () => {
    expect(
      fileNamesFor([
        "https://a.example/x/grid.png",
        "https://b.example/y/grid.png",
        "https://a.example/..%2F..%2Fetc%2Fpasswd",
        "https://a.example/",
      ]),
    ).toEqual(["grid.png", "1_grid.png", "_.._etc_passwd", "3_file"]);
  });

  it("replaces only whole strings equal to a stored URL, deeply", () => {
    const links = { "https://cdn.example/a.png": "https://gw.example/assets/a" };
    expect(
      withLinks(
        { a: "https://cdn.example/a.png", b: ["https://cdn.example/a.png", "see https://cdn.example/a.png"] },
        links,
      ),
    ).toEqual({
      a: "https://gw.example/assets/a",
      b: ["https://gw.example/assets/a", "see https://cdn.example/a.png"],
    });
  });

  it("a signed link checks as valid, and any change to path, expiry or signature does not", async () => {
    const link = new URL(
      await signAssetLink("https://gw.example", "t/ten_1/task_1/grid.png", 2_000, "s3cret"),
    );
    const exp = link.searchParams.get("exp")!;
    const sig = link.searchParams.get("sig")!;
    expect(await checkAssetLink(link.pathname, exp, sig, "s3cret", 1_000)).toBe("valid");
    expect(await checkAssetLink(link.pathname, exp, sig, "s3cret", 2_000)).toBe("expired");
    expect(await checkAssetLink(link.pathname, exp, sig, "other", 1_000)).toBe("invalid");
    expect(await checkAssetLink("/assets/t/ten_1/task_1/0.png", exp, sig, "s3cret", 1_000)).toBe("invalid");
    expect(await checkAssetLink(link.pathname, "2001", sig, "s3cret", 1_000)).toBe("invalid");
    expect(await checkAssetLink(link.pathname, exp, `${sig}=`, "s3cret", 1_000)).toBe("invalid");
    expect(await checkAssetLink(link.pathname, undefined, sig, "s3cret", 1_000)).toBe("invalid");
    expect(await checkAssetLink(link.pathname, "1e9", sig, "s3cret", 1_000)).toBe("invalid");
  });

  it("reads one byte range against a size", () => {
    expect(parseByteRange(null, 100)).toBe("whole");
    expect(parseByteRange("bytes=0-9", 100)).toEqual({ offset: 0, length: 10 });
    expect(parseByteRange("bytes=90-", 100)).toEqual({ offset: 90, length: 10 });
    expect(parseByteRange("bytes=95-200", 100)).toEqual({ offset: 95, length: 5 });
    expect(parseByteRange("bytes=-10", 100)).toEqual({ offset: 90, length: 10 });
    expect(parseByteRange("bytes=-500", 100)).toEqual({ offset: 0, length: 100 });
    expect(parseByteRange("bytes=100-", 100)).toBe("unsatisfiable");
    expect(parseByteRange("bytes=-0", 100)).toBe("unsatisfiable");
    expect(parseByteRange("bytes=0-1,5-6", 100)).toBe("whole");
    expect(parseByteRange("items=0-1", 100)).toBe("whole");
  });
});
