// Reports: plots and pages for people to look at.
export { lineChart, type ChartOptions, type Series } from "./svg.js";
export { renderReport, type ReportInput, type ReportRow } from "./html.js";
