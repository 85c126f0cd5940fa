/**
 * nbcost for JupyterLab 4 and Notebook 7: live cost in the status bar, on each cell and in a
 * side panel, fed by the kernel's `nbcost` comm; a cost record in each executed cell's metadata.
 */

import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { PageConfig } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { untrackSubshellControl } from './kernelstatus';
import { DEFAULT_SETTINGS, INbcostSettings, NotebookCost } from './notebookcost';
import { CostPanel, PANEL_ID } from './panel';
import { CostStatus } from './status';

const PLUGIN_ID = 'nbcost:plugin';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Live notebook cost: status bar total, cell badges, a spend panel, cell metadata.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ISettingRegistry, IStatusBar, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    settingRegistry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    labShell: ILabShell | null
  ) => {
    // Before any kernel connects: the %%cost widget must not make a running kernel read "Idle".
    untrackSubshellControl(PageConfig);
    let settings: INbcostSettings = { ...DEFAULT_SETTINGS };
    const notebooks = new Map<NotebookPanel, NotebookCost>();

    const panel = new CostPanel();
    app.shell.add(panel, 'right', { rank: 900 });
    const status = new CostStatus(() => app.shell.activateById(PANEL_ID));
    statusBar?.registerStatusItem(PLUGIN_ID, {
      item: status,
      align: 'left',
      rank: 3,
      isActive: () => tracker.currentWidget !== null
    });

    const showCurrent = () => {
      const current = tracker.currentWidget ? notebooks.get(tracker.currentWidget) ?? null : null;
      panel.setSource(current);
      status.setSource(current);
    };

    // One NotebookCost per notebook widget, made with the widget and disposed with it.
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (notebookPanel: NotebookPanel) => {
        const cost = new NotebookCost(notebookPanel, () => settings);
        notebooks.set(notebookPanel, cost);
        notebookPanel.disposed.connect(() => {
          notebooks.delete(notebookPanel);
          cost.dispose();
          showCurrent();
        });
        showCurrent();
        return cost;
      }
    });
    tracker.currentChanged.connect(showCurrent);
    labShell?.currentChanged.connect(showCurrent);

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(loaded => {
          const apply = () => {
            settings = { ...DEFAULT_SETTINGS, ...(loaded.composite as Partial<INbcostSettings>) };
            notebooks.forEach(cost => cost.refresh());
          };
          loaded.changed.connect(apply);
          apply();
        })
        .catch(reason => {
          console.error('nbcost: failed to load settings, using defaults.', reason);
        });
    }
  }
};

export default plugin;
