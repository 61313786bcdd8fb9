import { describe, expect, it } from "vitest";
import { minSec } from "./format";

describe("minSec", () => {
  it.each([
    [0, "0:00"],
    [999, "0:00"],
    [7_000, "0:07"],
    [65_400, "1:05"],
    [600_000, "10:00"],
    [-500, "0:00"],
  ])("%d ms reads %s", (ms, text) => {
    expect(minSec(ms)).toBe(text);
  });
});
