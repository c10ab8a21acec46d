/**
 * SVG drawings of the pictures (`/cdn/{task}/grid.svg`, `/{n}.svg`): results report the
 * PNG files (png.ts), and these answer at the same names with .svg. Colours
 * and shapes come from a hash of the task's seed text (its prompt plus
 * lineage) and the cell index, so different prompts look different and an
 * upscale shows exactly the grid cell it was cut from.
 */

import { hashString, randomSource } from "./ids";

const CELL_SIZE = 512;

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** The drawing of one image, as SVG elements inside a CELL_SIZE square. */
function cellElements(seed: string, cell: number, caption: string): string {
  const random = randomSource(hashString(`${seed}#${cell}`));
  const pick = (min: number, max: number) => Math.round(min + random() * (max - min));
  const hue = pick(0, 359);
  const gradientId = `bg${cell}`;
  const shapes: string[] = [];
  const shapeCount = pick(3, 6);
  for (let i = 0; i < shapeCount; i++) {
    const fill = `hsl(${(hue + pick(60, 300)) % 360} ${pick(50, 90)}% ${pick(40, 70)}%)`;
    const x = pick(40, CELL_SIZE - 40);
    const y = pick(40, CELL_SIZE - 40);
    const r = pick(20, 110);
    shapes.push(
      random() < 0.5
        ? `<circle cx="${x}" cy="${y}" r="${r}" fill="${fill}" fill-opacity="0.8"/>`
        : `<rect x="${x - r}" y="${y - r}" width="${2 * r}" height="${pick(r, 2 * r)}" rx="${pick(0, 24)}" fill="${fill}" fill-opacity="0.8" transform="rotate(${pick(0, 90)} ${x} ${y})"/>`,
    );
  }
  return [
    `<defs><linearGradient id="${gradientId}" x1="0" y1="0" x2="1" y2="1">`,
    `<stop offset="0" stop-color="hsl(${hue} 70% 35%)"/><stop offset="1" stop-color="hsl(${(hue + 40) % 360} 70% 15%)"/>`,
    "</linearGradient></defs>",
    `<rect width="${CELL_SIZE}" height="${CELL_SIZE}" fill="url(#${gradientId})"/>`,
    ...shapes,
    `<text x="16" y="${CELL_SIZE - 18}" font-family="sans-serif" font-size="20" fill="#fff" fill-opacity="0.85">${escapeXml(caption)}</text>`,
  ].join("");
}

function captionFor(prompt: string, cell: number): string {
  const short = prompt.length > 36 ? `${prompt.slice(0, 35)}…` : prompt;
  return `#${cell + 1} ${short}`;
}

/** One image (an upscale, or one cell of a grid). */
export function imageSvg(seed: string, cell: number, prompt: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${CELL_SIZE}" height="${CELL_SIZE}" viewBox="0 0 ${CELL_SIZE} ${CELL_SIZE}">${cellElements(seed, cell, captionFor(prompt, cell))}</svg>`;
}

/** The 2x2 grid: the same four pictures the per-image URLs serve. */
export function gridSvg(seed: string, prompt: string): string {
  const cells = [0, 1, 2, 3].map((cell) => {
    const x = (cell % 2) * CELL_SIZE;
    const y = Math.floor(cell / 2) * CELL_SIZE;
    // A nested <svg> clips its cell, so shapes do not spill into neighbours.
    return `<svg x="${x}" y="${y}" width="${CELL_SIZE}" height="${CELL_SIZE}">${cellElements(seed, cell, captionFor(prompt, cell))}</svg>`;
  });
  const size = CELL_SIZE * 2;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 ${size} ${size}">${cells.join("")}</svg>`;
}
