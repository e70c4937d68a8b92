// Reports: plots and pages for people to look at.
export { lineChart, intervalChart, type ChartOptions, type IntervalRow, type Series } from "./svg.js";
export { renderReport, escapeHtml, sampleFigure, type ReportInput, type ReportRow, type ReportSection } from "./html.js";
