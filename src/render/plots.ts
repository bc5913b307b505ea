import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** One point of a curve: the method it belongs to, x and y. */
export interface CurvePoint {
  series: string;
  x: number;
  y: number;
}

/** A Vega-Lite spec rendered to SVG by Vega itself (no browser, no canvas). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Line charts side by side, one per panel, a line per series: e.g. deletion and insertion curves per method. */
export function curvesSpec(
  panels: { title: string; points: CurvePoint[] }[],
  axes: { x: string; y: string; yDomain?: [number, number] },
): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: { font: 'DejaVu Sans', view: { stroke: '#ccc' } },
    hconcat: panels.map((panel) => ({
      title: panel.title,
      width: 320,
      height: 220,
      data: { values: panel.points },
      mark: { type: 'line', point: panel.points.length < 60 },
      encoding: {
        x: { field: 'x', type: 'quantitative', title: axes.x },
        y: { field: 'y', type: 'quantitative', title: axes.y, ...(axes.yDomain ? { scale: { domain: axes.yDomain } } : {}) },
        color: { field: 'series', type: 'nominal', title: 'method' },
      },
    })),
  } as TopLevelSpec;
}
